"""Reads of policies, and the dry run (a decision that changes nothing).

Policies are the company's rules: every role that may view policies reads those for all
agents and those for tags (which name no agent); a policy for one agent follows that agent's
visibility — whoever may not see the agent does not see its policies either (404, as for the
agent itself), so no list or page names an agent to someone it is hidden from.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from agents.models import Agent
from agents.selectors import agent_visible_qs
from controlplane.access import Actor, can, is_admin
from controlplane.errors import Conflict, Forbidden, NotFound
from controlplane.ids import parse_uuid
from integrations.tools.registry import TOOLS
from policies.models import Policy


def policy_list(*, actor: Actor) -> QuerySet[Policy]:
    """The policies the actor may read (for all agents, for tags, and for the agents they
    may see), in evaluation order (priority, then name); ``Forbidden`` for a role that may
    not view policies."""
    if not can(actor, "policies.view_policy"):
        raise Forbidden("Your role may not view policies.")
    policies = Policy.objects.select_related("target_agent", "created_by").prefetch_related(
        "target_tags"
    )
    if is_admin(actor.user):
        return policies
    return policies.filter(
        ~Q(applies_to=Policy.Scope.AGENT) | Q(target_agent__in=agent_visible_qs(actor=actor))
    )


def policy_get(*, actor: Actor, pk: str | uuid.UUID) -> Policy:
    key = parse_uuid(pk)
    policy = None if key is None else policy_list(actor=actor).filter(pk=key).first()
    if policy is None:
        raise NotFound(f"No policy {pk!r}.", code="policy_not_found")
    return policy


def policies_applying_to(queryset: QuerySet[Policy], *, agent: Agent) -> QuerySet[Policy]:
    """The policies of ``queryset`` that reach ``agent``: for all agents, for the agent
    itself, or for one of its tags (enabled or not)."""
    return queryset.filter(
        Q(applies_to=Policy.Scope.ALL)
        | Q(applies_to=Policy.Scope.AGENT, target_agent=agent)
        | Q(applies_to=Policy.Scope.TAG, target_tags__in=agent.tags.all())
    ).distinct()


def policy_dry_run(
    *,
    actor: Actor,
    agent: Agent,
    input: Any = None,
    at: datetime | None = None,
    action: str = "execute",
    destination: str | None = None,
    target: str | list[str] = "",
    complexity: str | None = None,
) -> dict[str, Any]:
    """What the engine would decide if ``agent`` ran (``action == "execute"``) or called a
    tool now (or ``at``), and why: counters are read, never changed, and nothing is created.
    ``agent`` was fetched through what the actor may see; its production version is the
    one that would run."""
    from policies import engine

    if not can(actor, "policies.view_policy"):
        raise Forbidden("Your role may not view policies.")
    version = agent.production_version
    if version is None:
        raise Conflict(
            f"Agent {agent.name!r} has no production version: nothing would run.",
            code="no_production_version",
        )
    if action != "execute" and destination is None:
        destination = TOOLS[action].destination  # where that tool sends, by default
    context = engine.Context(
        kind="trigger" if action == "execute" else "tool_call",
        action=action,
        destination=destination,
        target=target,
        payload={} if input is None else input,
        complexity_hint=complexity,
        actor_user_id=actor.user.pk if actor.user else None,
    )
    decision = engine.decide(agent=agent, version=version, context=context, at=at, dry_run=True)
    return decision.as_dict()
