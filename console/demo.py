"""The demo: an admin, the three sample agents of seed 000, seed 000's four policies (the
rate limit enabled; the others disabled — approvals, business hours and routing to paid
models would hold or break the offline demo runs until switched on).

Idempotent: what exists is left as it is, so a second ``make run`` changes nothing.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from typing import Any, cast

from django.contrib.auth.models import Group, User
from django.db import transaction

from agents import services as agent_services
from agents.config import validated_config
from agents.models import Agent
from controlplane.access import Actor
from controlplane.roles import Role
from policies.models import Policy
from policies.services import policy_create

ADMIN_USERNAME = "admin"


def demo_llm() -> dict[str, Any]:
    """The demo runs offline on the simulated provider, unless an Anthropic key is set."""
    if os.environ.get("ANTHROPIC_API_KEY"):
        return {"provider": "anthropic", "model": "claude-haiku-4-5", "temperature": 0.2}
    return {"provider": "simulated", "model": "simulated-1", "temperature": 0.2}


JOB_AGENT_BASE: dict[str, Any] = {
    # seed 000, "Register New Agent", with a built-in runtime so that it runs offline
    "name": "job-application-agent",
    "owner_email": "eng-team@company.com",
    "description": "Automated job application submission system",
    "capabilities": {"read": True, "write": True, "notify": True, "execute": False},
    "data_scope": {
        "datasets": ["job_listings", "user_profiles"],
        "apis": ["greenhouse_api", "lever_api"],
        "services": ["form_filler"],
    },
    "allowed_destinations": {"email": False, "slack": True, "external_api": True, "webhook": True},
    "trigger_type": "webhook",
    "tags": ["recruiting", "automation", "high-volume"],
    "runtime": "llm",
    "input_schema": {
        "type": "object",
        "properties": {
            "job_url": {"type": "string", "format": "uri", "title": "Job posting URL"},
            "candidate_id": {"type": "string", "title": "Candidate id"},
        },
        "required": ["job_url", "candidate_id"],
    },
    "tools": [
        {"name": "slack_notification", "config": {"allowed_channels": ["#job-updates"]}},
        {
            "name": "external_api_post",
            "config": {"allowed_domains": ["api.greenhouse.io", "api.lever.co"]},
        },
    ],
}

DEMO_AGENTS: list[dict[str, Any]] = [
    {
        **JOB_AGENT_BASE,
        "versions": [
            (
                "1.1.0",
                "First release.",
                {
                    "llm": {"system_prompt": "You submit job applications."},
                },
            ),
            (
                "1.2.0",
                "Writes a cover letter and posts to #job-updates.",
                {
                    "llm": {
                        "system_prompt": "You write a short cover letter for the candidate, submit "
                        "the application through the ATS API and report in #job-updates.",
                        "max_tokens": 2048,
                    },
                },
            ),
        ],
    },
    {
        "name": "email-summarizer",
        "owner_email": "ops-team@company.com",
        "description": "Summarizes a mailbox and e-mails the digest.",
        "capabilities": {"read": True, "write": False, "notify": True, "execute": False},
        "data_scope": {"datasets": ["mailboxes"], "apis": [], "services": []},
        "allowed_destinations": {
            "email": True,
            "slack": False,
            "external_api": False,
            "webhook": False,
        },
        "trigger_type": "manual",
        "tags": ["productivity"],
        "input_schema": {
            "type": "object",
            "properties": {
                "mailbox": {"type": "string", "format": "email", "title": "Mailbox"},
                "since_hours": {"type": "integer", "minimum": 1, "maximum": 168, "default": 24},
            },
            "required": ["mailbox"],
        },
        "tools": [{"name": "send_email", "config": {"allowed_domains": ["company.com"]}}],
        "versions": [
            (
                "1.0.0",
                "First release.",
                {
                    "llm": {
                        "system_prompt": "You summarize e-mails in five bullet points.",
                    },
                },
            ),
        ],
    },
    {
        "name": "data-sync-agent",
        "owner_email": "data-team@company.com",
        "description": "Syncs CRM records to the warehouse every six hours.",
        "capabilities": {"read": True, "write": True, "notify": False, "execute": False},
        "data_scope": {
            "datasets": ["crm_accounts"],
            "apis": ["crm_api"],
            "services": ["warehouse"],
        },
        "allowed_destinations": {
            "email": False,
            "slack": False,
            "external_api": True,
            "webhook": True,
        },
        "trigger": {"type": "cron", "schedule": "0 */6 * * *", "timezone": "UTC", "events": []},
        "tags": ["data", "scheduled"],
        "tools": [
            {"name": "http_request", "config": {"allowed_domains": ["crm.example.com"]}},
            {"name": "webhook_post", "config": {"url": "https://hooks.example.com/data-sync"}},
        ],
        "versions": [
            (
                "2.1.0",
                "Incremental sync.",
                {
                    "llm": {"system_prompt": "You sync changed CRM accounts."},
                },
            ),
        ],
    },
]

DEMO_POLICIES: list[dict[str, Any]] = [
    {
        # seed 000, "Create Rate Limit Policy"
        "policy_name": "job-agent-rate-limit",
        "policy_type": "rate_limit",
        "applies_to": "agent",
        "target_agent": "job-application-agent",
        "rules": {"max_executions": 50, "window_minutes": 60, "action_on_violation": "queue"},
        "priority": 50,
        "enabled": True,
    },
    {
        # seed 000, "Create Approval Requirement Policy"
        "policy_name": "email-approval-required",
        "policy_type": "approval_required",
        "applies_to": "all",
        "rules": {
            "require_approval_for": ["send_email", "external_api_post"],
            "approvers": ["manager@company.com", "ops-team@company.com"],
            "auto_expire_hours": 24,
            "risk_threshold": "medium",
        },
        "priority": 10,
        "enabled": False,
    },
    {
        # seed 000, "Time Window Policy"
        "policy_name": "business-hours-only",
        "policy_type": "time_window",
        "applies_to": "tag",
        "target_tags": ["customer-facing"],
        "rules": {
            "allowed_days": ["MON", "TUE", "WED", "THU", "FRI"],
            "allowed_hours": list(range(9, 18)),
            "timezone": "America/New_York",
            "action_on_violation": "delay_until_allowed",
        },
        "enabled": False,
    },
    {
        # seed 000, "Cost Optimization Policy"
        "policy_name": "use-cheaper-model-for-simple-tasks",
        "policy_type": "model_routing",
        "applies_to": "all",
        "rules": {
            "route_by_complexity": {
                "simple": {"provider": "openai", "model": "gpt-4o-mini", "max_tokens": 500},
                "medium": {"provider": "anthropic", "model": "claude-haiku-4", "max_tokens": 2000},
                "complex": {
                    "provider": "anthropic",
                    "model": "claude-sonnet-4-5",
                    "max_tokens": 8000,
                },
            },
            "complexity_detector": "token_estimate",
        },
        "enabled": False,
    },
]

AGENT_KEYS = ("name", "owner_email", "description", "tags")


@dataclass
class DemoResult:
    admin_password: str | None = None
    created: list[str] = field(default_factory=list)


def _admin_user(result: DemoResult) -> User:
    user = User.objects.filter(username=ADMIN_USERNAME).first()
    if user is None:
        result.admin_password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(
            ADMIN_USERNAME, "admin@example.com", result.admin_password
        )
        result.created.append(f"user {ADMIN_USERNAME}")
    user.groups.add(Group.objects.get(name=Role.ADMIN))
    return user


def _load_agent(actor: Actor, spec: dict[str, Any], result: DemoResult) -> None:
    if Agent.objects.filter(name=spec["name"]).exists():
        return
    shared = {key: value for key, value in spec.items() if key not in (*AGENT_KEYS, "versions")}
    agent = None
    for version, changelog, overrides in spec["versions"]:
        llm = {**demo_llm(), **overrides.get("llm", {})}
        config = validated_config({**shared, **overrides, "llm": llm})
        if agent is None:
            data = {key: spec[key] for key in AGENT_KEYS if key in spec}
            agent, _ = agent_services.agent_create(
                actor=actor,
                data={**data, "version": version, "config": config, "changelog": changelog},
            )
        else:
            agent_services.agent_version_create(
                actor=actor, agent=agent, version=version, config=config, changelog=changelog
            )
        agent_services.agent_version_promote(actor=actor, agent=agent, version=version)  # staging
        agent_services.agent_version_promote(
            actor=actor, agent=agent, version=version
        )  # production
    made = cast(Agent, agent)  # every demo agent lists versions: the first one made it
    agent_services.agent_transition(actor=actor, agent=made, action="activate")
    result.created.append(f"agent {made.name}")


def _load_policy(actor: Actor, spec: dict[str, Any], result: DemoResult) -> None:
    if Policy.objects.filter(policy_name=spec["policy_name"]).exists():
        return
    target = spec.get("target_agent")
    policy = policy_create(
        actor=actor,
        data={
            **{key: value for key, value in spec.items() if key != "target_agent"},
            "target_agent": Agent.objects.get(name=target) if target else None,
        },
    )
    state = "enabled" if policy.enabled else "disabled"
    result.created.append(f"policy {policy.policy_name} ({state})")


@transaction.atomic
def demo_load() -> DemoResult:
    """Load what is missing of the demo; returns the admin password if it created the admin."""
    result = DemoResult()
    actor = Actor(user=_admin_user(result))
    for spec in DEMO_AGENTS:
        _load_agent(actor, spec, result)
    for spec in DEMO_POLICIES:
        _load_policy(actor, spec, result)
    return result
