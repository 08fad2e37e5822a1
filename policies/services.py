"""Writes to policies, audited. The engine that applies them comes with the policies issue."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from controlplane.access import Actor, can
from controlplane.audit import audit_record
from controlplane.errors import Forbidden
from policies.models import Policy


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


@transaction.atomic
def policy_save(
    *,
    actor: Actor,
    policy: Policy,
    tags: list[Any] | None = None,
    before: dict[str, Any] | None = None,
) -> Policy:
    """Create or change a policy (``before`` is its snapshot before the change)."""
    creating = policy._state.adding
    if not can(actor, "policies.add_policy" if creating else "policies.change_policy"):
        raise Forbidden("Your role may not change policies.")
    if creating and policy.created_by_id is None:
        policy.created_by = actor.user
    policy.save()
    if tags is not None:
        policy.target_tags.set(tags)
    audit_record(
        actor=actor,
        action="policy.created" if creating else "policy.updated",
        target_type="policy",
        target_id=policy.pk,
        target_repr=policy.policy_name,
        agent_id=policy.target_agent_id,
        before=before,
        after=policy_snapshot(policy),
    )
    return policy


@transaction.atomic
def policy_delete(*, actor: Actor, policy: Policy) -> None:
    if not can(actor, "policies.delete_policy"):
        raise Forbidden("Your role may not delete policies.")
    before = policy_snapshot(policy)
    audit_record(
        actor=actor,
        action="policy.deleted",
        target_type="policy",
        target_id=policy.pk,
        target_repr=policy.policy_name,
        agent_id=policy.target_agent_id,
        before=before,
    )
    policy.delete()
