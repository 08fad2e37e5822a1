"""Writes to executions: the one transition service, what a policy decision does to a waiting
run, cancelling, the report of an external runtime. Starting a run is
``executions.trigger``; the worker side (claim, the agent loop) is ``executions.runtime``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from approvals.services import approval_cancel_for_execution
from controlplane.access import Actor, can
from controlplane.audit import audit_record
from controlplane.celery import app as celery_app
from controlplane.errors import Conflict, Forbidden, ServiceError
from controlplane.live import RunChanged, publish_after_commit
from executions.lifecycle import Transition, run_moved
from executions.models import Execution
from executions.recording import record_external_report
from policies.engine import Context, Decision, decide, undo_reservations

S = Execution.Status

# What each status may be reached from. Creation sets the first status directly.
ALLOWED_FROM: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.SCHEDULED, S.PENDING_APPROVAL, S.RUNNING}),
    S.RUNNING: frozenset({S.QUEUED, S.PENDING_APPROVAL}),
    S.PENDING_APPROVAL: frozenset({S.RUNNING}),
    # An approved run start is decided again: it may have to wait, or be refused after all.
    S.SCHEDULED: frozenset({S.PENDING_APPROVAL}),
    S.BLOCKED: frozenset({S.PENDING_APPROVAL}),
    S.RATE_LIMITED: frozenset({S.PENDING_APPROVAL}),
    S.SUCCESS: frozenset({S.RUNNING}),
    S.FAILED: frozenset({S.RUNNING, S.QUEUED}),
    S.TIMED_OUT: frozenset({S.RUNNING}),
    S.CANCELLED: frozenset({S.QUEUED, S.SCHEDULED, S.PENDING_APPROVAL, S.RUNNING}),
    S.EXPIRED: frozenset({S.PENDING_APPROVAL}),
}

SYSTEM = Actor.for_system("executions")


def execution_transition(
    *,
    execution_id: UUID | str,
    to: str,
    actor: Actor = SYSTEM,
    expect: Iterable[str] | None = None,
    attempt: int | None = None,
    fields: dict[str, Any] | Callable[[Execution], dict[str, Any]] | None = None,
    unless_cancel_requested: bool = False,
    related: tuple[str, ...] = (),
    reason: str = "",
) -> Execution | None:
    """Move one execution to ``to`` if it is in one of ``expect`` (default: every status
    ``to`` may be reached from), still at ``attempt`` if given, and not asked to cancel if
    ``unless_cancel_requested``. The row is locked, so of two racing callers exactly one
    succeeds; the loser gets None. Saves ``fields`` (or what ``fields(locked row)`` returns)
    with the status, writes the audit event, publishes the change after commit and calls
    ``executions.lifecycle.run_moved`` (what else a move does: its subscribers). The only
    writer of ``Execution.status``."""
    allowed = ALLOWED_FROM[to] if expect is None else frozenset(expect) & ALLOWED_FROM[to]
    with transaction.atomic():
        rows = (
            Execution.objects.select_for_update(of=("self",))
            .filter(pk=execution_id, status__in=allowed)
            .order_by()
        )
        if attempt is not None:
            rows = rows.filter(attempt=attempt)
        if unless_cancel_requested:
            rows = rows.filter(cancel_requested=False)
        if related:
            rows = rows.select_related(*related)
        execution = next(iter(rows), None)
        if execution is None:
            return None
        values = dict(fields(execution) if callable(fields) else fields or {})
        if to in Execution.TERMINAL:
            values.setdefault("completed_at", timezone.now())
        previous = execution.status
        execution.status = to
        for name, value in values.items():
            setattr(execution, name, value)
        execution.save(update_fields=["status", "updated_at", *values])
        after: dict[str, Any] = {"status": to, "attempt": execution.attempt}
        if reason:
            after["reason"] = reason
        if execution.error_type and to in (S.FAILED, S.TIMED_OUT):
            after["error_type"] = execution.error_type
        audit_record(
            actor=actor,
            action=f"execution.{to}",
            target=execution,
            before={"status": previous},
            after=after,
        )
        publish_after_commit(RunChanged(execution.pk, execution.agent_id, to))
        run_moved(Transition(execution, previous, actor))
    return execution


def release_when_ended(transition: Transition) -> None:
    """``run_moved``: a run that ended gives back what the policy engine reserved for it,
    after commit."""
    if transition.ended and transition.execution.policy_reservations:
        transaction.on_commit(partial(_release, transition.execution.pk))


def _release(execution_id: UUID) -> None:
    """After a run ended: free its concurrency slot and settle its budget with its actual
    cost; a run waiting for that slot is looked at now rather than at the next sweep."""
    from policies.engine import release_reservations

    execution = Execution.objects.only("agent_id", "policy_reservations", "estimated_cost_usd").get(
        pk=execution_id
    )
    if release_reservations(execution.policy_reservations, execution.estimated_cost_usd):
        celery_app.send_task(
            "executions.tasks.maintenance_dispatch_due",
            kwargs={"agent_id": str(execution.agent_id)},
            queue="maintenance",
        )


RUN_TASK = "executions.tasks.execution_run"


def _ring(execution_id: str, attempt: int) -> None:
    # By name: a web process that triggers runs need not import the runtime (and its SDKs).
    celery_app.send_task(RUN_TASK, args=[execution_id, attempt], queue="executions")


def enqueue_after_commit(execution: Execution) -> None:
    """Ring the doorbell once the row is committed: a worker never sees an uncommitted run."""
    transaction.on_commit(partial(_ring, str(execution.pk), execution.attempt))


# --- what a policy decision does to a run -----------------------------------------------


# The decision's outcome → the status the run starts in.
OUTCOME_STATUS = {
    "allow": S.QUEUED,
    "deny": S.BLOCKED,
    "rate_limited": S.RATE_LIMITED,
    "delay": S.SCHEDULED,
    "require_approval": S.PENDING_APPROVAL,
}


def decision_fields(decision: Decision) -> dict[str, Any]:
    """The execution fields a trigger-time decision sets (also when a scheduled run is
    looked at again)."""
    status = OUTCOME_STATUS[decision.outcome]
    fields: dict[str, Any] = {
        "policy_trace": decision.trace,
        "policy_reservations": decision.reservations,
        "not_before": decision.delay_until,
    }
    if decision.route:
        fields["routing"] = decision.route
        fields["llm_provider"] = decision.route["provider"]
        fields["llm_model"] = decision.route["model"]
    if status in (S.BLOCKED, S.RATE_LIMITED):
        fields["error_type"] = "policy_" + decision.outcome
        fields["error_message"] = decision.reason
    if status == S.QUEUED:
        fields["enqueued_at"] = timezone.now()
    return fields


def decide_again(execution: Execution, *, approved: bool, at: datetime | None = None) -> Decision:
    """The engine's decision for a run that waited to start (its time came, a slot freed, a
    person approved it), as at its trigger."""
    return decide(
        agent=execution.agent,
        version=execution.agent_version,
        context=Context(
            kind="trigger",
            payload=execution.input,
            execution_id=str(execution.pk),
            actor_user_id=execution.triggered_by_id,
            approved=approved,
        ),
        at=at,
    )


def execution_move_by_decision(
    execution: Execution, decision: Decision, *, actor: Actor, expect: set[str], reason: str
) -> Execution | None:
    """Move a waiting run where ``decision`` says (queued and enqueued after commit, or
    scheduled, or refused with the reason). If the run moved meanwhile (a cancel), what the
    decision reserved is given back and None returned."""
    to = OUTCOME_STATUS[decision.outcome]
    try:
        moved = execution_transition(
            execution_id=execution.pk,
            to=to,
            actor=actor,
            expect=expect,
            fields=decision_fields(decision),
            reason=reason if to == S.QUEUED else decision.reason,
        )
    except BaseException:
        undo_reservations(decision.reservations)
        raise
    if moved is None:
        undo_reservations(decision.reservations)
    elif to == S.QUEUED:
        enqueue_after_commit(moved)
    return moved


# --- cancelling -------------------------------------------------------------------------------


def execution_can_cancel(actor: Actor, execution: Execution) -> bool:
    """Cancelling takes the role's right to cancel and the right to run that agent."""
    return can(actor, "executions.cancel_execution") and can(
        actor, "agents.execute_agent", execution.agent
    )


def execution_cancel(*, actor: Actor, execution: Execution) -> Execution:
    """Not started yet: cancelled at once. Running: asked to stop; the loop stops before its
    next step. Finished: 409."""
    if not execution_can_cancel(actor, execution):
        raise Forbidden("You may not cancel runs of this agent.")
    waiting = (S.QUEUED, S.SCHEDULED, S.PENDING_APPROVAL)
    with transaction.atomic():
        cancelled = execution_transition(
            execution_id=execution.pk,
            to=S.CANCELLED,
            actor=actor,
            expect=waiting,
            reason="cancelled before it ran",
        )
        if cancelled is not None:
            approval_cancel_for_execution(execution_id=execution.pk, actor=actor)
    if cancelled is not None:
        return cancelled
    with transaction.atomic():
        asked = Execution.objects.filter(pk=execution.pk, status=S.RUNNING).update(
            cancel_requested=True, updated_at=timezone.now()
        )
        if asked:
            audit_record(
                actor=actor,
                action="execution.cancel_requested",
                target=execution.audit_target(execution.agent.name),
            )
    execution.refresh_from_db()
    if not asked and execution.is_terminal:
        raise Conflict(
            f"The execution is already {execution.status}.",
            code="execution_finished",
            details={"status": execution.status},
        )
    return execution


# --- the report of an external runtime (n8n) --------------------------------------------------


def callback_token_new() -> tuple[str, str]:
    """A per-execution token for the external runtime's report, and its stored hash."""
    token = secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


def callback_token_valid(execution: Execution, token: str) -> bool:
    if not execution.callback_token_hash or not token:
        return False
    digest = hashlib.sha256(token.encode()).hexdigest()
    return constant_time_compare(digest, execution.callback_token_hash)


def execution_report(*, execution: Execution, data: dict[str, Any]) -> Execution:
    """Record what the workflow did and finish the run (the caller checked the token)."""
    with transaction.atomic():
        locked = Execution.objects.select_for_update(of=("self",)).get(pk=execution.pk)
        if locked.status != S.RUNNING or not locked.awaiting_report:
            raise Conflict(
                f"The execution is {locked.status}: it takes no report now.",
                code="execution_finished" if locked.is_terminal else "not_awaiting_report",
                details={"status": locked.status},
            )
        fields = record_external_report(locked, data)
        finished = execution_transition(
            execution_id=locked.pk,
            to=S.SUCCESS if data["status"] == "success" else S.FAILED,
            actor=Actor.for_system("n8n"),
            expect={S.RUNNING},
            fields={**fields, "awaiting_report": False},
            reason="reported by the workflow",
        )
    if finished is None:  # pragma: no cover - the row is locked above
        raise ServiceError("The execution changed while the report was recorded.")
    return finished
