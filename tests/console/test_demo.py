"""The demo make run loads: an admin (password printed once), the roles, seed 000's three
sample agents (active, a production version that runs offline) and two disabled policies."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import RequestFactory

from agents.models import Agent
from controlplane.audit import audit_verify
from policies.models import Policy
from tests import factories

pytestmark = pytest.mark.django_db


def sign_in(password: str) -> Any:
    """authenticate() as the login form calls it: with the request (login throttling needs
    one)."""
    return authenticate(RequestFactory().post("/login/"), username="admin", password=password)


@pytest.fixture
def demo_output(db: Any) -> str:
    factories.ensure_roles()
    out = StringIO()
    call_command("demo", stdout=out)
    return out.getvalue()


def test_demo_creates_an_admin_whose_password_is_printed_once(demo_output: str) -> None:
    password = demo_output.split("Log in as  admin / ")[1].split()[0]

    user = sign_in(password)
    assert user is not None
    assert user.is_superuser
    assert user.groups.filter(name="admin").exists()

    again = StringIO()
    call_command("demo", stdout=again)
    assert "Log in as" not in again.getvalue()
    assert "already loaded" in again.getvalue()
    assert sign_in(password) is not None


def test_demo_agents_are_active_with_an_offline_production_version(demo_output: str) -> None:
    agents = {agent.name: agent for agent in Agent.objects.select_related("production_version")}

    assert set(agents) == {"job-application-agent", "email-summarizer", "data-sync-agent"}
    for agent in agents.values():
        assert agent.status == "active"
        config = agent.production_version.config
        assert config["runtime"] == "llm"
        assert config["llm"]["provider"] == "simulated"
    job = agents["job-application-agent"]
    assert job.owner_email == "eng-team@company.com"
    assert sorted(tag.name for tag in job.tags.all()) == ["automation", "high-volume", "recruiting"]
    assert job.production_version.config["capabilities"] == factories.SEED_AGENT["capabilities"]
    assert job.production_version.previous_production.version == "1.1.0"
    assert (
        agents["data-sync-agent"].production_version.config["trigger"]["schedule"] == "0 */6 * * *"
    )


def test_demo_has_seed_policies_with_only_the_rate_limit_enabled(demo_output: str) -> None:
    policies = {policy.policy_name: policy for policy in Policy.objects.all()}

    assert set(policies) == {
        "job-agent-rate-limit",
        "email-approval-required",
        "business-hours-only",
        "use-cheaper-model-for-simple-tasks",
    }
    assert [name for name, policy in policies.items() if policy.enabled] == ["job-agent-rate-limit"]
    assert policies["job-agent-rate-limit"].target_agent.name == "job-application-agent"
    assert policies["job-agent-rate-limit"].rules == {
        "max_executions": 50,
        "window_minutes": 60,
        "action_on_violation": "queue",
    }
    assert [tag.name for tag in policies["business-hours-only"].target_tags.all()] == [
        "customer-facing"
    ]


def test_demo_is_audited(demo_output: str) -> None:
    assert audit_verify().ok


def test_demo_agents_use_anthropic_when_a_key_is_set(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    factories.ensure_roles()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-demo")

    call_command("demo", stdout=StringIO())

    providers = {
        agent.production_version.config["llm"]["provider"] for agent in Agent.objects.all()
    }
    assert providers == {"anthropic"}
