"""The sweep celery-beat runs every ``MAINTENANCE_INTERVAL_SECONDS``: the database is the
source of truth, the broker only a doorbell, so anything the broker lost is found here.

- scheduled runs whose time has come are decided again by the policy engine (queued, kept
  waiting, or refused) — also on their own beat entry, every ``DISPATCH_INTERVAL_SECONDS``;
- concurrency slots held by runs that ended without giving them back are freed;
- queued runs whose message may have been lost (Redis flushed or restarted) are enqueued
  again — a duplicate message is harmless: only one delivery can claim the run;
- running runs whose worker stopped heart-beating are queued again for their next attempt
  (which resumes from the checkpoint), or failed with "worker lost" after the last attempt;
- running runs past their deadline (an n8n workflow that never reported, a stuck worker)
  are timed out;
- the closed days the dashboard reads are summed once ready (``executions.rollups``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.utils import timezone

from controlplane.access import Actor
from executions.models import Execution
from executions.rollups import sum_recent_days
from executions.services import (
    OUTCOME_STATUS,
    decide_again,
    enqueue_after_commit,
    execution_move_by_decision,
    execution_transition,
)

S = Execution.Status
BATCH = 500
SWEEP = Actor.for_system("maintenance")


@dataclass
class SweepReport:
    dispatched: int = 0
    requeued: int = 0
    reaped: int = 0
    failed_lost: int = 0
    timed_out: int = 0
    summed_days: int = 0


CLAIM_LEASE = timedelta(seconds=60)  # a run being decided again is left alone this long


def dispatch_due(now: datetime | None = None, *, agent_id: UUID | str | None = None) -> int:
    """Scheduled runs whose time has come are decided again (a time window, a rate window,
    a concurrency slot may have freed — or not yet): queued, kept waiting with a new time,
    or refused. Returns how many were queued.

    With ``agent_id`` (sent when one of its runs freed a concurrency slot), that agent's runs
    waiting for a slot are looked at now, not when their retry time comes. Oldest first (the
    order they were triggered in); once an agent's slots are full, its later runs are not
    decided again in this pass. Each run
    is claimed first by a conditional update of its time, so two dispatchers never decide
    the same run (its counters are keyed by the run)."""
    from policies.engine import QUEUE_RETRY

    now = now or timezone.now()
    queued = 0
    due = Execution.objects.filter(status=S.SCHEDULED)
    if agent_id is not None:
        due = due.filter(agent_id=agent_id, not_before__lte=now + QUEUE_RETRY)
    else:
        due = due.filter(not_before__lte=now)
    full: set[UUID] = set()
    for execution in due.select_related("agent", "agent_version").order_by("created_at")[:BATCH]:
        if execution.agent_id in full:
            continue
        claimed = Execution.objects.filter(
            pk=execution.pk, status=S.SCHEDULED, not_before=execution.not_before
        ).update(not_before=now + CLAIM_LEASE)
        if not claimed:
            continue
        decision = decide_again(
            execution,
            # a run start a person approved, waiting for its time or a slot
            approved=execution.approvals.filter(call_key="execute", status="approved").exists(),
            at=now,
        )
        if OUTCOME_STATUS[decision.outcome] == S.SCHEDULED:  # still waiting: a new time
            Execution.objects.filter(pk=execution.pk, status=S.SCHEDULED).update(
                not_before=decision.delay_until, policy_trace=decision.trace
            )
            if decision.holds_agent:
                full.add(execution.agent_id)
            continue
        moved = execution_move_by_decision(
            execution, decision, actor=SWEEP, expect={S.SCHEDULED}, reason="due"
        )
        if moved is not None and moved.status == S.QUEUED:
            queued += 1
    return queued


def reconcile_running_counts(grace_seconds: int = 60) -> int:
    """Concurrency slots held by runs that ended (a worker that died before giving its slot
    back) are freed; returns how many. Slots younger than ``grace_seconds`` are left alone:
    their trigger may not have committed its run yet."""
    from policies.engine import reconcile_slots

    def still_going(ids: list[str]) -> set[str]:
        going = Execution.objects.filter(pk__in=ids).exclude(status__in=Execution.TERMINAL)
        return {str(pk) for pk in going.values_list("pk", flat=True)}

    return reconcile_slots(still_going, grace_seconds)


def sweep() -> SweepReport:
    """One pass of every repair; safe to run concurrently and repeatedly."""
    now = timezone.now()
    report = SweepReport()
    reconcile_running_counts()
    report.dispatched = dispatch_due(now)

    stale_queue = now - timedelta(seconds=settings.EXECUTION_REQUEUE_AFTER_SECONDS)
    for execution in Execution.objects.filter(status=S.QUEUED, enqueued_at__lt=stale_queue)[:BATCH]:
        # Bump first, conditionally, so that two sweeps don't both re-send.
        bumped = Execution.objects.filter(
            pk=execution.pk, status=S.QUEUED, enqueued_at=execution.enqueued_at
        ).update(enqueued_at=now)
        if bumped:
            enqueue_after_commit(execution)
            report.requeued += 1

    silent = now - timedelta(seconds=settings.EXECUTION_HEARTBEAT_TIMEOUT_SECONDS)
    lost = Execution.objects.filter(
        status=S.RUNNING, awaiting_report=False, heartbeat_at__lt=silent
    ).only("pk", "attempt")
    for execution in lost[:BATCH]:
        if execution.attempt < settings.EXECUTION_MAX_ATTEMPTS:
            requeued = execution_transition(
                execution_id=execution.pk,
                to=S.QUEUED,
                actor=SWEEP,
                expect={S.RUNNING},
                attempt=execution.attempt,
                # attempt= above makes this exact: a stale message of the old attempt can't claim it.
                fields={
                    "attempt": execution.attempt + 1,
                    "worker": "",
                    "heartbeat_at": None,
                    "enqueued_at": now,
                },
                reason="worker lost",
            )
            if requeued is not None:
                enqueue_after_commit(requeued)
                report.reaped += 1
        else:
            failed = execution_transition(
                execution_id=execution.pk,
                to=S.FAILED,
                actor=SWEEP,
                expect={S.RUNNING},
                attempt=execution.attempt,
                fields={
                    "error_type": "worker_lost",
                    "error_message": f"The worker was lost {execution.attempt} times; giving up.",
                },
                reason="worker lost",
            )
            report.failed_lost += failed is not None

    overdue = now - timedelta(seconds=settings.EXECUTION_TIMEOUT_GRACE_SECONDS)
    for execution in Execution.objects.filter(status=S.RUNNING, deadline_at__lt=overdue).only("pk")[
        :BATCH
    ]:
        timed_out = execution_transition(
            execution_id=execution.pk,
            to=S.TIMED_OUT,
            actor=SWEEP,
            expect={S.RUNNING},
            fields={
                "error_type": "timeout",
                "error_message": "No result before the deadline"
                + (" (the workflow never reported)." if execution.awaiting_report else "."),
                "awaiting_report": False,
            },
            reason="deadline",
        )
        report.timed_out += timed_out is not None
    report.summed_days = sum_recent_days(now=now)
    return report
