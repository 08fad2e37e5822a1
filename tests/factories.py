"""Test data, made through the same services users go through."""

from __future__ import annotations

import copy
from typing import Any

import factory
from django.apps import apps
from django.contrib.auth.models import Group, User

from agents import services as agent_services
from agents.api.serializers import AgentCreateSerializer
from controlplane import services as core_services
from controlplane.access import Actor, can
from controlplane.roles import Role, sync_role_groups

# seed 000, "Register New Agent", exactly as written
SEED_AGENT: dict[str, Any] = {
    "name": "job-application-agent",
    "version": "1.2.0",
    "owner_email": "eng-team@company.com",
    "description": "Automated job application submission system",
    "capabilities": {"read": True, "write": True, "notify": True, "execute": False},
    "data_scope": {
        "datasets": ["job_listings", "user_profiles"],
        "apis": ["greenhouse_api", "lever_api"],
        "services": ["form_filler"],
    },
    "allowed_destinations": {"email": False, "slack": True, "external_api": True, "webhook": True},
    "n8n_workflow_id": "wf_abc123",
    "trigger_type": "webhook",
    "tags": ["recruiting", "automation", "high-volume"],
}

LLM_AGENT: dict[str, Any] = {
    "name": "email-summarizer",
    "version": "1.0.0",
    "owner_email": "ops@company.com",
    "runtime": "llm",
    "llm": {"provider": "simulated", "system_prompt": "Summarize."},
    "capabilities": {"read": True, "write": False, "notify": True, "execute": False},
    "allowed_destinations": {
        "email": True,
        "slack": False,
        "external_api": False,
        "webhook": False,
    },
    "tools": [{"name": "send_email", "config": {"allowed_domains": ["company.com"]}}],
    "input_schema": {
        "type": "object",
        "properties": {"mailbox": {"type": "string"}},
        "required": ["mailbox"],
    },
    "tags": ["productivity"],
}


def seed_payload(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(SEED_AGENT), **changes}


def ensure_roles() -> None:
    """Role groups come from a data migration; a transactional test's flush removes them."""
    if Group.objects.filter(name__in=Role.values).count() < len(Role.values):
        sync_role_groups(apps)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@company.com")
    password = factory.django.Password("correct horse battery staple")


def user(username: str, *, role: str | None = None, teams: list[str] = (), **fields: Any) -> User:
    ensure_roles()
    created = UserFactory(
        username=username, is_staff=role in ("admin", "operator", "viewer"), **fields
    )
    if role:
        created.groups.add(Group.objects.get(name=role))
    for team in teams:
        created.groups.add(Group.objects.get_or_create(name=team)[0])
    return created


def agent(owner: User, *, team: str | None = None, payload: dict[str, Any] | None = None) -> Any:
    data = payload or seed_payload()
    if team:
        data = {**data, "team": team}
    serializer = AgentCreateSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    created, _ = agent_services.agent_create(
        actor=Actor(user=owner), data=serializer.validated_data
    )
    return created


def api_key(owner: User, role: str | None = None) -> str:
    """A real key for ``owner``, of ``role`` (default: the owner's role), created by the
    owner, or by an admin for roles that may not create keys (service accounts)."""
    if role is None:
        role = next(name for name in Role.values if owner.groups.filter(name=name).exists())
    actor = Actor(user=owner)
    if not can(actor, "controlplane.add_apikey"):
        actor = Actor(user=user("keymaster", role="admin"))
    _, secret = core_services.api_key_create(actor=actor, owner=owner, name="test", role=role)
    return secret


def to_production(agent_obj: Any, by: User, version: str | None = None) -> Any:
    """Promote a version twice: draft → staging → production."""
    actor = Actor(user=by)
    target = agent_services.agent_version_promote(actor=actor, agent=agent_obj, version=version)
    return agent_services.agent_version_promote(
        actor=actor, agent=agent_obj, version=target.version
    )


def runnable_agent(
    owner: User, *, name: str = "runner", team: str | None = None, **config: Any
) -> Any:
    """An active agent whose production version runs on the simulated provider; ``config``
    overrides the version config (e.g. ``llm={"simulation": {...}}``, ``tools=[...]``)."""
    llm = {"provider": "simulated", "system_prompt": "You help.", **config.pop("llm", {})}
    payload = {
        "name": name,
        "version": "1.0.0",
        "owner_email": f"{owner.username}@company.com",
        "runtime": "llm",
        "llm": llm,
        "capabilities": {"read": True, "write": True, "notify": True, "execute": True},
        "allowed_destinations": {
            "email": True,
            "slack": True,
            "external_api": True,
            "webhook": True,
        },
        **config,
    }
    created = agent(owner, team=team, payload=payload)
    to_production(created, owner)
    agent_services.agent_transition(actor=Actor(user=owner), agent=created, action="activate")
    created.refresh_from_db()
    return created


def api_client(owner: User, role: str | None = None) -> Any:
    """A DRF test client sending a real API key of ``owner``."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key(owner, role)}")
    return client


def policy(
    by: User,
    name: str,
    policy_type: str,
    rules: dict[str, Any],
    *,
    agent: Any = None,
    tags: list[str] = (),
    priority: int = 100,
    enabled: bool = True,
) -> Any:
    """A policy made through the service (scope from ``agent`` / ``tags``, else all), and
    the policy index renewed at once: a test's transaction never commits, so the service's
    after-commit renewal would not run."""
    from policies.engine import index_changed
    from policies.services import policy_create

    applies_to = "agent" if agent is not None else "tag" if tags else "all"
    created = policy_create(
        actor=Actor(user=by),
        data={
            "policy_name": name,
            "policy_type": policy_type,
            "applies_to": applies_to,
            "target_agent": agent,
            "target_tags": list(tags),
            "rules": rules,
            "priority": priority,
            "enabled": enabled,
        },
    )
    index_changed()
    return created
