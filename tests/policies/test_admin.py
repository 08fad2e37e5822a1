"""Policies in the Django admin: the list, the add / change form with per-type rules
validation (errors on the rules field, with their paths), target agents limited to what
the user may see, tags by name, and every write — save, delete, the enable / disable
actions — through ``policies.services``, whose refusals become admin messages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from agents.models import Agent, Tag
from controlplane.models import AuditEvent
from policies.models import Policy
from tests import factories
from tests.policies.factories import APPROVAL_SEED

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:policies_policy_changelist")
ADD = reverse("admin:policies_policy_add")
RATE_LIMIT = {"max_executions": 10, "window_minutes": 60, "action_on_violation": "reject"}


def change_url(policy: Policy) -> str:
    return reverse("admin:policies_policy_change", args=[policy.pk])


def logged_in(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def form_data(**changes: Any) -> dict[str, Any]:
    return {
        "policy_name": "job-agent-limit",
        "policy_type": "rate_limit",
        "applies_to": "all",
        "target_agent": "",
        "target_tags": "",
        "rules": json.dumps(RATE_LIMIT),
        "enabled": "on",
        "priority": 50,
        **changes,
    }


def rules_errors(response: Any) -> list[str]:
    assert response.status_code == 200, response.status_code  # the form again, with errors
    return list(response.context["adminform"].form.errors.get("rules", []))


def shown(client: Client, response: Any) -> list[tuple[str, str]]:
    assert response.status_code == 302, response.content
    page = client.get(response["Location"])
    return [(message.level_tag, str(message)) for message in page.context["messages"]]


def listed(client: Client, query: str = "") -> list[str]:
    response = client.get(f"{CHANGELIST}{query}")
    assert response.status_code == 200
    return [policy.policy_name for policy in response.context["cl"].result_list]


@pytest.fixture
def their_agent(outsider: Any) -> Agent:
    return factories.agent(outsider, payload=factories.LLM_AGENT)


@pytest.fixture
def three(agent: Agent, admin_user: Any, owner: Any) -> dict[str, Policy]:
    return {
        "all": factories.policy(admin_user, "everyone-limit", "rate_limit", RATE_LIMIT),
        "agent": factories.policy(
            owner, "job-limit", "rate_limit", RATE_LIMIT, agent=agent, priority=20
        ),
        "tag": factories.policy(
            admin_user,
            "recruiting-hours",
            "time_window",
            {"allowed_hours": [9, 10]},
            tags=["recruiting"],
            priority=30,
            enabled=False,
        ),
    }


# --- the list ------------------------------------------------------------------------------


def test_list_shows_type_scope_target_state_and_priority(
    client: Client, three: dict[str, Policy], viewer: Any
) -> None:
    response = logged_in(client, viewer).get(CHANGELIST)

    assert response.status_code == 200
    rows = {
        policy.policy_name: (
            policy.policy_type,
            policy.applies_to,
            response.context["cl"].model_admin.target(policy),
            policy.enabled,
            policy.priority,
        )
        for policy in response.context["cl"].result_list
    }
    assert rows == {
        "everyone-limit": ("rate_limit", "all", "all agents", True, 100),
        "job-limit": ("rate_limit", "agent", "job-application-agent", True, 20),
        "recruiting-hours": ("time_window", "tag", "#recruiting", False, 30),
    }
    assert b"#recruiting" in response.content


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?policy_type__exact=time_window", ["recruiting-hours"]),
        ("?applies_to__exact=agent", ["job-limit"]),
        ("?enabled__exact=0", ["recruiting-hours"]),
        ("?q=recruiting", ["recruiting-hours"]),
        ("?q=job-application", ["job-limit"]),
    ],
)
def test_filters_and_search(
    client: Client, three: dict[str, Policy], owner: Any, query: str, expected: list[str]
) -> None:
    assert listed(logged_in(client, owner), query) == expected


# --- add / change: per-type validation -----------------------------------------------------


@pytest.mark.parametrize(
    ("policy_type", "rules", "error"),
    [
        ("rate_limit", {**RATE_LIMIT, "burst": 3}, "rules.burst: Unknown field."),
        (
            "rate_limit",
            {**RATE_LIMIT, "max_executions": "10"},
            "rules.max_executions: Must be an integer.",
        ),
        ("rate_limit", {**RATE_LIMIT, "max_executions": -1}, "rules.max_executions: "),
        ("time_window", {"allowed_hours": [9, 25]}, "rules.allowed_hours[1]: "),
        ("time_window", {"allowed_days": ["FUNDAY"]}, "rules.allowed_days[0]: "),
        ("time_window", {"timezone": "Mars/Olympus"}, "rules.timezone: Unknown time zone"),
        ("concurrency", {}, "rules.max_running: This field is required."),
        ("cost_budget", [], "rules: "),
    ],
)
def test_rules_are_validated_for_the_type_with_paths_on_the_rules_field(
    client: Client, admin_user: Any, policy_type: str, rules: Any, error: str
) -> None:
    response = logged_in(client, admin_user).post(
        ADD, form_data(policy_type=policy_type, rules=json.dumps(rules))
    )

    errors = rules_errors(response)
    assert any(message.startswith(error) for message in errors), errors
    assert not Policy.objects.exists()


def test_rules_that_are_not_json_are_a_field_error(client: Client, admin_user: Any) -> None:
    response = logged_in(client, admin_user).post(ADD, form_data(rules="{max_executions: 10"))

    assert rules_errors(response)
    assert not Policy.objects.exists()


def test_add_stores_the_rules_with_their_defaults(client: Client, admin_user: Any) -> None:
    client = logged_in(client, admin_user)

    response = client.post(
        ADD,
        form_data(
            policy_name="email-approval-required",
            policy_type="approval_required",
            rules=json.dumps(APPROVAL_SEED["rules"]),
        ),
    )

    assert response.status_code == 302
    policy = Policy.objects.get()
    assert policy.rules["required_approvals"] == 1
    assert policy.rules["approvers"] == APPROVAL_SEED["rules"]["approvers"]
    [event] = AuditEvent.objects.filter(target_type="policy", target_id=str(policy.pk))
    assert (event.action, event.after["rules"]) == ("policy.created", policy.rules)


def test_operator_may_add_a_policy_for_an_agent_they_may_change(
    client: Client, agent: Agent, other: Any
) -> None:
    client = logged_in(client, other)

    response = client.post(ADD, form_data(applies_to="agent", target_agent=str(agent.pk)))

    assert response.status_code == 302, response.context and response.context["errors"]
    policy = Policy.objects.get()
    assert (policy.target_agent, policy.created_by) == (agent, other)
    [event] = AuditEvent.objects.filter(target_type="policy")
    assert (event.action, event.actor_label) == ("policy.created", "bob")


def test_operator_adding_a_tag_policy_is_told_why_not(
    client: Client, agent: Agent, owner: Any
) -> None:
    client = logged_in(client, owner)

    response = client.post(ADD, form_data(applies_to="tag", target_tags="recruiting"))

    assert ("error", "A policy for all agents or for a tag takes an admin.") in shown(
        client, response
    )
    assert not Policy.objects.exists()
    assert not AuditEvent.objects.filter(target_type="policy").exists()


def test_scope_refusal_from_the_service_is_a_message(client: Client, admin_user: Any) -> None:
    client = logged_in(client, admin_user)

    response = client.post(ADD, form_data(applies_to="tag", target_tags=""))

    assert ("error", "target_tags: A policy for a tag names at least one.") in shown(
        client, response
    )
    assert not Policy.objects.exists()


def test_target_agent_offers_only_agents_the_user_may_see(
    client: Client, agent: Agent, their_agent: Agent, owner: Any
) -> None:
    client = logged_in(client, owner)

    page = client.get(ADD)
    response = client.post(ADD, form_data(applies_to="agent", target_agent=str(their_agent.pk)))

    offered = page.context["adminform"].form.fields["target_agent"].queryset
    assert list(offered) == [agent]
    assert response.status_code == 200
    assert "target_agent" in response.context["adminform"].form.errors
    assert not Policy.objects.exists()


def test_target_tags_are_given_by_name(client: Client, admin_user: Any) -> None:
    client = logged_in(client, admin_user)

    response = client.post(
        ADD, form_data(applies_to="tag", target_tags="customer-facing, recruiting")
    )
    bad = client.post(ADD, form_data(policy_name="other", applies_to="tag", target_tags="no!good"))

    assert response.status_code == 302
    policy = Policy.objects.get()
    assert sorted(tag.name for tag in policy.target_tags.all()) == [
        "customer-facing",
        "recruiting",
    ]
    assert Tag.objects.filter(name="customer-facing").exists()
    assert "target_tags" in bad.context["adminform"].form.errors
    assert Policy.objects.count() == 1


def test_change_form_shows_tags_by_name_and_rules_as_json(
    client: Client, three: dict[str, Policy], admin_user: Any
) -> None:
    response = logged_in(client, admin_user).get(change_url(three["tag"]))

    form = response.context["adminform"].form
    assert form.initial["target_tags"] == "recruiting"
    assert json.loads(form["rules"].value()) == three["tag"].rules


def test_change_through_the_service(client: Client, three: dict[str, Policy], owner: Any) -> None:
    policy = three["agent"]
    client = logged_in(client, owner)

    response = client.post(
        change_url(policy),
        form_data(
            policy_name="job-limit",
            applies_to="agent",
            target_agent=str(policy.target_agent_id),
            rules=json.dumps({**RATE_LIMIT, "max_executions": 3}),
            priority=7,
        ),
    )

    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.rules["max_executions"], policy.priority) == (3, 7)
    event = AuditEvent.objects.filter(target_id=str(policy.pk)).latest("id")
    assert (event.action, event.actor_label) == ("policy.updated", "alice")
    assert (event.before["priority"], event.after["priority"]) == (20, 7)


def test_operator_changing_a_policy_for_all_agents_is_told_why_not(
    client: Client, three: dict[str, Policy], owner: Any
) -> None:
    policy = three["all"]
    client = logged_in(client, owner)

    response = client.post(
        change_url(policy), form_data(policy_name=policy.policy_name, priority=1)
    )

    assert ("error", "A policy for all agents or for a tag takes an admin.") in shown(
        client, response
    )
    policy.refresh_from_db()
    assert policy.priority == 100


# --- enable / disable / delete -------------------------------------------------------------


def _action(client: Client, name: str, *policies: Policy, **extra: Any) -> Any:
    return client.post(
        CHANGELIST,
        {"action": name, "_selected_action": [policy.pk for policy in policies], **extra},
    )


def test_enable_and_disable_actions(
    client: Client, three: dict[str, Policy], admin_user: Any
) -> None:
    client = logged_in(client, admin_user)

    disabled = shown(client, _action(client, "disable_selected", three["all"], three["agent"]))
    enabled = shown(client, _action(client, "enable_selected", three["tag"]))

    assert ("success", "everyone-limit is disabled.") in disabled
    assert ("success", "recruiting-hours is enabled.") in enabled
    states = dict(Policy.objects.values_list("policy_name", "enabled"))
    assert states == {"everyone-limit": False, "job-limit": False, "recruiting-hours": True}
    updates = AuditEvent.objects.filter(action="policy.updated", actor_label="root")
    assert updates.count() == 3


def test_actions_refused_by_the_service_are_messages(
    client: Client, three: dict[str, Policy], owner: Any
) -> None:
    client = logged_in(client, owner)

    response = _action(client, "disable_selected", three["all"], three["agent"])

    messages = shown(client, response)
    assert ("error", "everyone-limit: A policy for all agents or for a tag takes an admin.") in (
        messages
    )
    assert ("success", "job-limit is disabled.") in messages
    states = dict(Policy.objects.values_list("policy_name", "enabled"))
    assert (states["everyone-limit"], states["job-limit"]) == (True, False)


def test_viewer_gets_no_actions(client: Client, three: dict[str, Policy], viewer: Any) -> None:
    client = logged_in(client, viewer)

    page = client.get(CHANGELIST)
    response = _action(client, "disable_selected", three["all"])

    assert page.context["action_form"] is None
    assert response.status_code == 200  # the list again: there is no such action for a viewer
    three["all"].refresh_from_db()
    assert three["all"].enabled


def test_bulk_delete_asks_then_deletes_each_through_the_service(
    client: Client, three: dict[str, Policy], owner: Any
) -> None:
    client = logged_in(client, owner)

    confirm = _action(client, "delete_selected", three["all"], three["agent"])
    response = _action(client, "delete_selected", three["all"], three["agent"], post="yes")

    assert confirm.status_code == 200
    assert "admin/delete_selected_confirmation.html" in [t.name for t in confirm.templates]
    messages = shown(client, response)
    assert ("success", "Deleted job-limit.") in messages
    assert ("error", "everyone-limit: A policy for all agents or for a tag takes an admin.") in (
        messages
    )
    assert sorted(Policy.objects.values_list("policy_name", flat=True)) == [
        "everyone-limit",
        "recruiting-hours",
    ]
    [event] = AuditEvent.objects.filter(action="policy.deleted")
    assert (event.target_repr, event.actor_label) == ("job-limit", "alice")


def test_delete_page_refused_by_the_service_is_a_message(
    client: Client, three: dict[str, Policy], owner: Any
) -> None:
    policy = three["all"]
    client = logged_in(client, owner)

    response = client.post(
        reverse("admin:policies_policy_delete", args=[policy.pk]), {"post": "yes"}
    )

    assert response["Location"] == change_url(policy)
    assert ("error", "A policy for all agents or for a tag takes an admin.") in shown(
        client, response
    )
    assert Policy.objects.filter(pk=policy.pk).exists()
    assert not AuditEvent.objects.filter(action="policy.deleted").exists()
