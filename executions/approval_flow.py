"""A run held for a person: opening its approval request, and what the decision does to it.

Approvals own the request and its decisions (``approvals.services``); this module owns the
run's side. ``approval_hold`` opens the request in the transaction that moves the run to
``pending_approval``; ``run_after_approval`` is subscribed to
``approvals.services.approval_settled`` and moves the run in the transaction that settles the
request, so a request and its run never disagree:

=========  ==============================  ===========================================
outcome    a run waiting to start          a run waiting at a tool call
=========  ==============================  ===========================================
approved   decided again by the policy     resumes from its checkpoint; the call runs
           engine with the approval        once, with the payload that was shown
           counted: queued (or scheduled,  (hash checked)
           refused by a rate limit …)
rejected   cancelled                       ``on_reject``: ``tool_error`` — resumes, the
                                           model is told "rejected by …: notes";
                                           ``cancel`` — cancelled
expired    ``on_expire``: ``reject`` — the run is expired; ``approve`` — as approved
=========  ==============================  ===========================================
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from approvals.models import ApprovalRequest
from approvals.services import approval_open
from controlplane.access import Actor
from executions.models import Execution, ExecutionStep
from executions.services import (
    decide_again,
    enqueue_after_commit,
    execution_move_by_decision,
    execution_transition,
)
from policies.engine import Decision

A = ApprovalRequest.Status
S = Execution.Status


def approval_hold(
    *,
    execution: Execution,
    decision: Decision,
    action: str,
    call_key: str,
    requested_action: dict[str, Any],
) -> ApprovalRequest:
    """Open the request that holds ``execution`` (its start, or one tool call), in the
    caller's transaction."""
    return approval_open(
        execution_id=execution.pk,
        agent_id=execution.agent_id,
        requested_by_id=execution.triggered_by_id,
        requested_by_label=execution.trigger_user,
        decision=decision,
        action=action,
        call_key=call_key,
        requested_action=requested_action,
    )


def run_after_approval(request: ApprovalRequest, actor: Actor) -> None:
    """``approval_settled``: the run's timeline shows the wait as settled, and the run goes
    where the outcome says (see the module docstring)."""
    status = request.status
    if status == A.EXPIRED and request.on_expire == "approve":
        status = A.APPROVED
    ExecutionStep.objects.filter(
        execution_id=request.execution_id, kind=ExecutionStep.Kind.APPROVAL, status="pending"
    ).update(
        status=ExecutionStep.Status.SUCCESS
        if status == A.APPROVED
        else ExecutionStep.Status.REFUSED
    )
    if status == A.APPROVED and request.call_key == "execute":
        # The engine decides again with the approval counted: a rate limit, a time window
        # or a concurrency limit still applies.
        execution = Execution.objects.select_related("agent", "agent_version").get(
            pk=request.execution_id
        )
        execution_move_by_decision(
            execution,
            decide_again(execution, approved=True),
            actor=actor,
            expect={S.PENDING_APPROVAL},
            reason="approved",
        )
        return
    resume = status == A.APPROVED or (status == A.REJECTED and request.on_reject == "tool_error")
    if resume:
        moved = execution_transition(
            execution_id=request.execution_id,
            to=S.QUEUED,
            actor=actor,
            expect={S.PENDING_APPROVAL},
            fields={"enqueued_at": timezone.now()},
            reason=f"approval {status}: resumes",
        )
        if moved is not None:
            enqueue_after_commit(moved)
        return
    if status == A.EXPIRED:
        to, error_type = S.EXPIRED, "approval_expired"
        message = f"The approval for {request.action} expired unanswered."
    else:
        to, error_type = S.CANCELLED, "approval_rejected"
        message = f"{request.action} rejected by {request.decided_by}" + (
            f": {request.review_notes}" if request.review_notes else "."
        )
    execution_transition(
        execution_id=request.execution_id,
        to=to,
        actor=actor,
        expect={S.PENDING_APPROVAL},
        fields={"error_type": error_type, "error_message": message},
        reason=error_type,
    )
