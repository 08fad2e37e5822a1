"""The sweep celery-beat runs every ``MAINTENANCE_INTERVAL_SECONDS``: the database is the
source of truth, the broker only a doorbell, so anything the broker lost is found here.

- scheduled runs whose time has come are queued;
- queued runs whose message may have been lost (Redis flushed or restarted) are enqueued
  again — a duplicate message is harmless: only one delivery can claim the run;
- running runs whose worker stopped heart-beating are queued again for their next attempt
  (which resumes from the checkpoint), or failed with "worker lost" after the last attempt;
- running runs past their deadline (an n8n workflow that never reported, a stuck worker)
  are timed out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from controlplane.access import Actor
from executions.models import Execution
from executions.services import enqueue_after_commit, execution_transition

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


def sweep() -> SweepReport:
    """One pass of every repair; safe to run concurrently and repeatedly."""
    now = timezone.now()
    report = SweepReport()
    due = Execution.objects.filter(status=S.SCHEDULED, not_before__lte=now).values_list(
        "pk", flat=True
    )
    for pk in due[:BATCH]:
        execution = execution_transition(
            execution_id=pk,
            to=S.QUEUED,
            actor=SWEEP,
            expect={S.SCHEDULED},
            fields={"enqueued_at": now},
            reason="due",
        )
        if execution is not None:
            enqueue_after_commit(execution)
            report.dispatched += 1

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
    return report
