"""Writes to policies: validated per type, permission-checked, audited, and announced to
every process (the policy index's version is renewed after commit).

Who may: the role's policy permission, and for a policy scoped to one agent the right to
change that agent; a policy for all agents or a tag reaches other teams' agents, so it
takes an admin.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from agents.models import Agent, Tag
from controlplane.access import Actor, actor_is_admin, can
from controlplane.audit import audit_record
from controlplane.errors import Conflict, Forbidden, Invalid
from policies.models import Policy
from policies.rules import validated_rules


def policy_snapshot(policy: Policy) -> dict[str, Any]:
    return {
        "policy_name": policy.policy_name,
        "policy_type": policy.policy_type,
        "applies_to": policy.applies_to,
        "target_agent": str(policy.target_agent_id) if policy.target_agent_id else None,
        "target_tags": sorted(tag.name for tag in policy.target_tags.all()) if policy.pk else [],
        "rules": policy.rules,
        "enabled": policy.enabled,
        "priority": policy.priority,
    }


def _announce() -> None:
    from policies.engine import index_changed

    transaction.on_commit(index_changed)


def policy_index_follow_tags(agent: Agent) -> None:
    """``agents.services.agent_tags_changed``: tag policies reach other agents now."""
    _announce()


def _require(actor: Actor, perm: str, applies_to: str, agent: Agent | None) -> None:
    """The role's right first, then the scope's shape (a 400 names the missing target),
    then the right on what the scope reaches."""
    if not can(actor, perm):
        raise Forbidden("Your role may not change policies.")
    if applies_to == Policy.Scope.AGENT:
        if agent is None:
            raise Invalid.field("target_agent_id", "A policy for one agent names it.", "required")
        if not can(actor, "agents.change_agent", agent):
            raise Forbidden("A policy for one agent takes the right to change that agent.")
    elif not actor_is_admin(actor):
        raise Forbidden("A policy for all agents or for a tag takes an admin.")


def _check_scope(applies_to: str, agent: Agent | None, tags: list[str]) -> None:
    """(A missing agent is ``_require``'s, which comes first.)"""
    if applies_to == Policy.Scope.TAG and not tags:
        raise Invalid.field("target_tags", "A policy for a tag names at least one.", "required")
    if applies_to != Policy.Scope.AGENT and agent is not None:
        raise Invalid.field("target_agent_id", "Only an agent policy names an agent.", "unexpected")
    if applies_to != Policy.Scope.TAG and tags:
        raise Invalid.field("target_tags", "Only a 'tag' policy names tags.", "unexpected")


def _tags(names: list[str]) -> list[Tag]:
    return [Tag.objects.get_or_create(name=name)[0] for name in dict.fromkeys(names)]


def _duplicate(name: str) -> Conflict:
    return Conflict(
        f"A policy named {name!r} exists.",
        code="duplicate_policy_name",
        details={"policy_name": name},
    )


@transaction.atomic
def policy_create(*, actor: Actor, data: dict[str, Any]) -> Policy:
    """A policy from seed 000's payload fields (``target_agent`` already resolved to an
    Agent, ``target_tags`` as names, ``rules`` raw: validated here for the type)."""
    applies_to = data.get("applies_to", Policy.Scope.ALL)
    agent, tags = data.get("target_agent"), list(data.get("target_tags") or [])
    _require(actor, "policies.add_policy", applies_to, agent)
    _check_scope(applies_to, agent, tags)
    if Policy.objects.filter(policy_name=data["policy_name"]).exists():
        raise _duplicate(data["policy_name"])
    rules = validated_rules(data["policy_type"], data.get("rules", {}))
    try:
        with transaction.atomic():  # a concurrent create of the same name: 409, not 500
            policy = Policy.objects.create(
                policy_name=data["policy_name"],
                policy_type=data["policy_type"],
                applies_to=applies_to,
                target_agent=agent,
                rules=rules,
                enabled=data.get("enabled", True),
                priority=data.get("priority", 100),
                created_by=actor.user,
            )
    except IntegrityError:
        raise _duplicate(data["policy_name"]) from None
    policy.target_tags.set(_tags(tags))
    audit_record(
        actor=actor,
        action="policy.created",
        target=policy,
        after=policy_snapshot(policy),
    )
    _announce()
    return policy


@transaction.atomic
def policy_update(*, actor: Actor, policy: Policy, data: dict[str, Any]) -> Policy:
    """Change some fields; the result is validated whole (a new type needs new rules)."""
    policy = Policy.objects.select_for_update().get(pk=policy.pk)
    before = policy_snapshot(policy)
    _require(actor, "policies.change_policy", policy.applies_to, policy.target_agent)
    applies_to = data.get("applies_to", policy.applies_to)
    agent = data.get("target_agent", policy.target_agent)
    if "applies_to" in data and applies_to != Policy.Scope.AGENT and "target_agent" not in data:
        agent = None
    tags = list(data["target_tags"]) if "target_tags" in data else before["target_tags"]
    if "applies_to" in data and applies_to != Policy.Scope.TAG and "target_tags" not in data:
        tags = []
    _require(actor, "policies.change_policy", applies_to, agent)
    _check_scope(applies_to, agent, tags)
    policy_type = data.get("policy_type", policy.policy_type)
    if policy_type != policy.policy_type and "rules" not in data:
        raise Invalid.field("rules", "A policy of a new type needs its rules.", "required")
    name = data.get("policy_name", policy.policy_name)
    if Policy.objects.filter(policy_name=name).exclude(pk=policy.pk).exists():
        raise _duplicate(name)
    policy.policy_name = name
    policy.policy_type = policy_type
    policy.applies_to = applies_to
    policy.target_agent = agent
    policy.rules = validated_rules(policy_type, data.get("rules", policy.rules))
    policy.enabled = data.get("enabled", policy.enabled)
    policy.priority = data.get("priority", policy.priority)
    try:
        with transaction.atomic():
            policy.save()
    except IntegrityError:
        raise _duplicate(name) from None
    policy.target_tags.set(_tags(tags))
    after = policy_snapshot(policy)
    if after != before:
        audit_record(
            actor=actor,
            action="policy.updated",
            target=policy,
            before=before,
            after=after,
        )
        _announce()
    return policy


def policy_set_enabled(*, actor: Actor, policy: Policy, enabled: bool) -> Policy:
    return policy_update(actor=actor, policy=policy, data={"enabled": enabled})


@transaction.atomic
def policy_delete(*, actor: Actor, policy: Policy) -> None:
    _require(actor, "policies.delete_policy", policy.applies_to, policy.target_agent)
    audit_record(
        actor=actor,
        action="policy.deleted",
        target=policy,
        before=policy_snapshot(policy),
    )
    policy.delete()
    _announce()
