"""Writes to approvals: opening a request, deciding it, expiring it, cancelling it.

A request leaves ``pending`` exactly once, by a conditional update (``WHERE status =
'pending'``), and ``approval_settled`` is called in the same transaction, so a request and
what follows from it never disagree. Deciding also locks the request row first, so that M-of-N
counts are exact when approvers click at the same moment. Whoever loses a race gets 409 with
the current state.

Approvals know the run a request holds only by its ids: what an outcome does to the run —
resume it, decide its start again, cancel or expire it — is the run's business, subscribed to
``approval_settled`` by ``executions.approval_flow``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.models import ApprovalDecision, ApprovalRequest
from controlplane.access import Actor, actor_is_admin, can
from controlplane.audit import audit_record
from controlplane.celery import app as celery_app
from controlplane.errors import Conflict, Forbidden, Invalid, NotFound
from controlplane.hooks import Hook
from controlplane.live import ApprovalChanged, publish_after_commit
from integrations.tools.registry import TOOLS
from policies.engine import Decision
from policies.models import Policy

if TYPE_CHECKING:
    from django.contrib.auth.models import User

A = ApprovalRequest.Status
SYSTEM = Actor.for_system("approvals")
RISK_ORDER = ("low", "medium", "high", "critical")
MAX_NOTES = 5000


def action_hash(requested_action: dict[str, Any]) -> str:
    """SHA-256 of the payload in canonical JSON: what is approved is what must run."""
    canonical = json.dumps(requested_action, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


# Called when a request leaves pending (approved, rejected, expired), in that transaction,
# with the settled request and who settled it; not when it is cancelled with its run.
approval_settled: Hook[[ApprovalRequest, Actor]] = Hook("approvals.approval_settled")


def risk_level(action: str, decision: Decision, rules: dict[str, Any]) -> str:
    """The action's own risk (the tool catalog; a run start is low, a budget overrun high),
    raised to the approval policy's ``risk_threshold``: a policy marks its requests at least
    that risky."""
    from policies.types import risk_floor

    own = TOOLS[action].risk if action in TOOLS else "low"
    own = max(own, risk_floor(decision.policy_type), key=RISK_ORDER.index)
    floor: str = rules.get("risk_threshold", "low")
    return max(own, floor, key=RISK_ORDER.index)


def _notify(approval_id: UUID, event: str) -> None:
    celery_app.send_task(
        "approvals.tasks.approval_notify", args=[str(approval_id), event], queue="default"
    )


def notify_after_commit(approval_id: UUID, event: str) -> None:
    transaction.on_commit(partial(_notify, approval_id, event))


# --- opening ----------------------------------------------------------------------------------


def approval_open(
    *,
    execution_id: UUID,
    agent_id: UUID,
    requested_by_id: int | None,
    requested_by_label: str,
    decision: Decision,
    action: str,
    call_key: str,
    requested_action: dict[str, Any],
) -> ApprovalRequest:
    """Open the request for a run start (``call_key`` "execute") or a tool call, in the
    caller's transaction (the run's move to pending_approval). Opening the same one twice
    (a re-delivered message) returns the first."""
    existing = ApprovalRequest.objects.filter(execution_id=execution_id, call_key=call_key).first()
    if existing is not None:
        return existing
    rules = decision.approval or {}
    now = timezone.now()
    expires_at = now + timedelta(hours=float(rules.get("auto_expire_hours", 24)))
    warn_at = None
    if rules.get("warn_before_minutes"):
        warn_at = max(now, expires_at - timedelta(minutes=rules["warn_before_minutes"]))
    policy_id = rules.get("policy_id") or decision.policy_id
    if policy_id and not Policy.objects.filter(pk=policy_id).exists():
        policy_id = None  # deleted since the decision
    request = ApprovalRequest.objects.create(
        execution_id=execution_id,
        agent_id=agent_id,
        policy_id=policy_id,
        policy_name=decision.policy_name or "",
        action=action,
        call_key=call_key,
        requested_action=requested_action,
        action_hash=action_hash(requested_action),
        reason=decision.reason,
        risk_level=risk_level(action, decision, rules),
        approvers=list(rules.get("approvers", [])),
        required_approvals=int(rules.get("required_approvals", 1)),
        allow_self_approval=bool(rules.get("allow_self_approval", False)),
        on_reject=rules.get("on_reject", "tool_error") if action != "execute" else "cancel",
        on_expire=rules.get("on_expire", "reject"),
        requested_by_id=requested_by_id,
        requested_by_label=requested_by_label,
        expires_at=expires_at,
        warn_at=warn_at,
    )
    audit_record(
        actor=SYSTEM,
        action="approval.requested",
        target=request,
        after={
            "execution": str(execution_id),
            "action": action,
            "risk": request.risk_level,
            "approvers": request.approvers,
            "required_approvals": request.required_approvals,
            "expires_at": expires_at.isoformat(),
            "hash": request.action_hash,
            "reason": decision.reason,
        },
    )
    notify_after_commit(request.pk, "requested")
    publish_after_commit(ApprovalChanged(request.pk, request.execution_id, request.agent_id))
    return request


# --- who may decide ---------------------------------------------------------------------------


def approval_is_assigned(user: User | None, request: ApprovalRequest) -> bool:
    """Is the user one of the request's listed approvers (by e-mail or group)?"""
    if user is None:
        return False
    email = (user.email or "").strip().lower()
    for approver in request.approvers:
        if approver.startswith("group:"):
            if approver[6:].lower() in _group_names(user):
                return True
        elif email and approver.lower() == email:
            return True
    return False


def _group_names(user: User) -> set[str]:
    """The user's group names, lowercased (as ``selectors.assigned_q`` matches them), read
    once per user object (a queue page asks per request)."""
    cached: set[str] | None = getattr(user, "_cp_group_names", None)
    if cached is None:
        names = user.groups.values_list("name", flat=True)
        cached = {name.lower() for name in names}
        user._cp_group_names = cached  # type: ignore[attr-defined]  # a cache on the object
    return cached


def approval_refusal(actor: Actor, request: ApprovalRequest) -> str | None:
    """Why the actor may not decide this request, or None when they may: the listed
    approvers and admins, with the role's right to decide; never the user who triggered the
    run unless the policy allows self-approval."""
    if actor.user is None or not can(actor, "approvals.decide_approvalrequest"):
        return "Your role may not approve or reject requests."
    if not (actor_is_admin(actor) or approval_is_assigned(actor.user, request)):
        listed = ", ".join(request.approvers) or "admins only"
        return f"You are not an approver of this request ({listed})."
    if (
        request.requested_by_id is not None
        and request.requested_by_id == actor.user.pk
        and not request.allow_self_approval
    ):
        return "You triggered this run: someone else must approve it."
    return None


def approval_refusal_now(actor: Actor, request: ApprovalRequest) -> str | None:
    """``approval_refusal``, and also why not *now*: the request is settled, or the actor
    already decided it (an approver counts once). Reads ``request.decisions.all()``, so a
    list that prefetched them costs no query per request."""
    if not request.is_pending:
        return f"This request is already {request.status}."
    if actor.user is not None and any(
        decision.user_id == actor.user.pk for decision in request.decisions.all()
    ):
        return "You have already decided this request."
    return approval_refusal(actor, request)


# --- deciding ---------------------------------------------------------------------------------


def approval_decide(
    *, actor: Actor, request: ApprovalRequest, verdict: str, notes: str = ""
) -> ApprovalRequest:
    """One approver's approve or reject. A rejection settles the request; an approval
    settles it when it is the M-th. 403 for who may not decide, 409 when it is no longer
    pending or this approver already decided."""
    refusal = approval_refusal(actor, request)
    if refusal:
        raise Forbidden(refusal)
    if verdict not in ApprovalDecision.Verdict.values:
        raise Invalid.field("verdict", "Must be approve or reject.")
    notes = (notes or "").strip()
    if len(notes) > MAX_NOTES:
        raise Invalid.field("notes", f"At most {MAX_NOTES} characters.", "max_length")
    with transaction.atomic():
        # The lock orders deciders of one request: the M-th approval sees the others.
        locked = ApprovalRequest.objects.select_for_update().filter(pk=request.pk).first()
        if locked is None:
            raise NotFound("No such approval request.")
        if locked.status != A.PENDING:
            raise _decided(locked)
        try:
            with transaction.atomic():
                ApprovalDecision.objects.create(
                    request=locked,
                    user=actor.user,
                    user_label=actor.label[:200],
                    verdict=verdict,
                    notes=notes,
                )
        except IntegrityError:
            raise Conflict(
                "You have already decided this request.",
                code="approval_already_decided",
                details={"status": locked.status},
            ) from None
        audit_record(
            actor=actor,
            action=f"approval.{verdict}",
            target=locked,
            after={"notes": notes, "execution": str(locked.execution_id)},
        )
        assert actor.user is not None  # approval_refusal turned away any other actor
        who = actor.user.get_username()
        if verdict == ApprovalDecision.Verdict.REJECT:
            _settle(locked, A.REJECTED, by=who, notes=notes, actor=actor)
        else:
            approvals = locked.decisions.filter(verdict=ApprovalDecision.Verdict.APPROVE).count()
            if approvals >= locked.required_approvals:
                _settle(locked, A.APPROVED, by=who, notes=notes, actor=actor)
    locked.refresh_from_db()
    return locked


def _decided(request: ApprovalRequest) -> Conflict:
    request.refresh_from_db()
    return Conflict(
        f"This request is already {request.status}"
        + (f" (by {request.decided_by})." if request.decided_by else "."),
        code="approval_not_pending",
        details={"status": request.status, "decided_by": request.decided_by},
    )


def _settle(request: ApprovalRequest, status: str, *, by: str, notes: str, actor: Actor) -> None:
    """Move the request out of pending (conditionally: the loser of a race raises 409 and
    its transaction rolls back) and tell ``approval_settled``'s subscribers."""
    now = timezone.now()
    moved = ApprovalRequest.objects.filter(pk=request.pk, status=A.PENDING).update(
        status=status, decided_by=by[:200], decided_at=now, review_notes=notes
    )
    if not moved:
        raise _decided(request)
    request.status, request.decided_by, request.decided_at, request.review_notes = (
        status,
        by[:200],
        now,
        notes,
    )
    audit_record(
        actor=actor,
        action=f"approval.{status}",
        target=request,
        before={"status": A.PENDING},
        after={"status": status, "by": by, "notes": notes},
    )
    approval_settled(request, actor)
    notify_after_commit(request.pk, "decided")
    publish_after_commit(ApprovalChanged(request.pk, request.execution_id, request.agent_id))


# --- expiry, warnings, cancellation -----------------------------------------------------------

BATCH = 500


def approval_expire_due(now: datetime | None = None) -> int:
    """Pending requests past ``expires_at`` expire (``on_expire``: the run expires, or the
    request counts as approved). Each in its own transaction; a request an approver settled
    a moment earlier is left as it is. Returns how many expired."""
    now = now or timezone.now()
    expired = 0
    due = ApprovalRequest.objects.filter(status=A.PENDING, expires_at__lte=now).order_by(
        "expires_at"
    )
    for request in due[:BATCH]:
        try:
            with transaction.atomic():
                by = "system (approved on expiry)" if request.on_expire == "approve" else "system"
                _settle(request, A.EXPIRED, by=by, notes="", actor=SYSTEM)
        except Conflict:
            continue  # decided meanwhile
        expired += 1
    return expired


def approval_warn_due(now: datetime | None = None) -> int:
    """Pending requests whose warning time came: their approvers are reminded, once."""
    now = now or timezone.now()
    warned = 0
    due = ApprovalRequest.objects.filter(
        status=A.PENDING, warn_at__lte=now, warned_at__isnull=True, expires_at__gt=now
    )
    for pk in due.values_list("pk", flat=True)[:BATCH]:
        with transaction.atomic():
            if ApprovalRequest.objects.filter(pk=pk, warned_at__isnull=True).update(warned_at=now):
                notify_after_commit(pk, "warning")
                warned += 1
    return warned


def approval_cancel_for_execution(*, execution_id: UUID, actor: Actor) -> int:
    """The run ended while waiting (cancelled): its pending requests are cancelled too."""
    requests = list(
        ApprovalRequest.objects.filter(execution_id=execution_id, status=A.PENDING).only(
            "pk", "action", "agent_id"
        )
    )
    cancelled = 0
    for request in requests:
        if ApprovalRequest.objects.filter(pk=request.pk, status=A.PENDING).update(
            status=A.CANCELLED, decided_by=actor.label[:200], decided_at=timezone.now()
        ):
            cancelled += 1
            audit_record(
                actor=actor,
                action="approval.cancelled",
                target=request,
                after={"reason": "the run was cancelled"},
            )
            publish_after_commit(ApprovalChanged(request.pk, execution_id, request.agent_id))
    return cancelled


def approval_for_call(execution_id: UUID, call_key: str) -> ApprovalRequest | None:
    return ApprovalRequest.objects.filter(execution_id=execution_id, call_key=call_key).first()
