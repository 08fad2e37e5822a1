"""Each fire of a cron schedule, handled once.

- ``schedule_fire`` — what beat's entry calls at each fire, what the safety-net tick calls
  when a fire is overdue, and what a run's end calls when a fire is queued behind it. The
  schedule row is locked; the fires after the cursor whose time (plus jitter) has come are
  handled — one run for the latest, per the overlap and catch-up settings — and the cursor
  moves. Two beats, a tick delivered twice or the tick racing beat find nothing left to do;
  ``ScheduleFire`` (one row per fire) and the execution's idempotency key
  (``cron:<fire time>``) hold the same line in the database.
- ``cron_run_ended`` — subscribed to ``executions.lifecycle.run_moved``, in the transaction of
  a cron run's terminal transition: count the failures in a row, pause the schedule after
  ``pause_after_failures`` of them.
- ``schedules_tick`` — the safety net on beat.

A fire handled more than ``SCHEDULE_MISSED_GRACE_SECONDS`` late, or several fires at once,
means beat or the workers were down or stuck: that is an alert (audit event, e-mail to the
owner, the dashboard), and ``catch_up`` says whether it still runs once or is skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.models import Agent
from controlplane import cron
from controlplane.celery import app as celery_app
from controlplane.errors import ServiceError
from executions.lifecycle import Transition
from executions.models import Execution
from executions.trigger import TriggerRequest, execution_trigger
from schedules.models import Schedule, ScheduleFire
from schedules.services import (
    FIRE_TASK,
    SCHEDULER,
    audit_schedule,
    grace,
    jitter_of,
    lock_agent,
    notify_after_commit,
    pause_schedule,
    schedule_sync,
    set_next,
    spec_of,
)

logger = logging.getLogger(__name__)

# Beat may ring a moment before the minute (its clock, rounding): a fire this close is due.
EARLY = timedelta(seconds=1)
GOING = frozenset(set(Execution.Status) - Execution.TERMINAL)
Outcome = ScheduleFire.Outcome


@dataclass
class FireReport:
    handled: datetime | None = None  # the fire handled (the latest due)
    outcome: str = ""
    execution_id: UUID | None = None
    missed: int = 0
    late_seconds: float = 0.0
    drained: int = 0  # queued fires started
    retry_in: float | None = None  # its jitter has not passed yet: call again then


def schedule_fire(agent_id: UUID | str, now: datetime | None = None) -> FireReport | None:
    """Handle what is due on the agent's schedule at ``now``: queued fires first (one, when
    no run of the agent is going), then the latest fire after the cursor. None when the
    agent has no active schedule."""
    now = now or timezone.now()
    with transaction.atomic():
        lock_agent(agent_id)
        schedule = (
            Schedule.objects.select_for_update(of=("self",))
            .select_related("agent", "agent__production_version")
            .filter(agent_id=agent_id)
            .first()
        )
        if schedule is None:
            return None
        report = FireReport(drained=_drain(schedule, now))
        if not schedule.active:
            return report
        spec, zone = spec_of(schedule)
        latest, count = cron.due(spec, zone, schedule.cursor, now + EARLY)
        if latest is None:
            return report
        due_at = latest + timedelta(seconds=jitter_of(schedule, latest))
        if due_at > now + EARLY:
            report.retry_in = (due_at - now).total_seconds()
            if count == 1:
                return report  # the tick or the retry comes back for it
            # Older missed fires are folded into it: handle them now, at the latest's time.
        report.handled, report.missed = latest, count - 1
        report.late_seconds = max(0.0, (now - due_at).total_seconds())
        on_time = report.missed == 0 and report.late_seconds <= grace().total_seconds()
        if on_time or schedule.catch_up == Schedule.CatchUp.ONCE:
            fire = _handle(schedule, latest, now, report)
        else:
            fire = _record(
                schedule, latest, now, Outcome.SKIPPED_LATE, report,
                detail="catch-up is off: a fire that cannot run on time is skipped",
            )  # fmt: skip
        report.outcome = fire.outcome
        if not on_time:
            _alert_missed(schedule, latest, report)
        schedule.cursor = latest
        set_next(schedule)
        schedule.save(update_fields=["cursor", "next_fire_at", "due_at", "updated_at"])
    return report


def _going(schedule: Schedule) -> Execution | None:
    return (
        Execution.objects.filter(agent_id=schedule.agent_id, status__in=GOING)
        .only("pk", "status")
        .order_by("created_at")
        .first()
    )


def _handle(
    schedule: Schedule, fire_at: datetime, now: datetime, report: FireReport
) -> ScheduleFire:
    if schedule.overlap != Schedule.Overlap.ALLOW:
        going = _going(schedule)
        queued = ScheduleFire.objects.filter(agent_id=schedule.agent_id, outcome=Outcome.QUEUED)
        if schedule.overlap == Schedule.Overlap.SKIP and going is not None:
            return _record(
                schedule, fire_at, now, Outcome.SKIPPED_OVERLAP, report,
                detail=f"run {going.pk} is still {going.status}",
            )  # fmt: skip
        if schedule.overlap == Schedule.Overlap.QUEUE and (going is not None or queued.exists()):
            if queued.count() >= settings.SCHEDULE_QUEUE_MAX:
                return _record(
                    schedule, fire_at, now, Outcome.SKIPPED_OVERLAP, report,
                    detail=f"{settings.SCHEDULE_QUEUE_MAX} fires already queued",
                )  # fmt: skip
            return _record(
                schedule, fire_at, now, Outcome.QUEUED, report,
                detail=f"waits for run {going.pk}" if going else "waits for earlier fires",
            )  # fmt: skip
    return _trigger(schedule, fire_at, now, report)


def _trigger(
    schedule: Schedule,
    fire_at: datetime,
    now: datetime,
    report: FireReport,
    fire: ScheduleFire | None = None,
) -> ScheduleFire:

    try:
        with transaction.atomic():
            result = execution_trigger(
                TriggerRequest(
                    actor=SCHEDULER,
                    agent=schedule.agent,
                    input=schedule.input,
                    source=Execution.Source.CRON,
                    idempotency_key=f"cron:{fire_at.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                )
            )
    except ServiceError as exc:
        audit_schedule(SCHEDULER, "schedule.fire_refused", schedule, None,
               fire_at=fire_at.isoformat(), error=exc.message, code=exc.code)  # fmt: skip
        return _record(schedule, fire_at, now, Outcome.REFUSED, report, detail=exc.message,
                       fire=fire)  # fmt: skip
    report.execution_id = result.execution.pk
    return _record(
        schedule, fire_at, now, Outcome.TRIGGERED, report,
        execution=result.execution, fire=fire,
    )  # fmt: skip


def _record(
    schedule: Schedule,
    fire_at: datetime,
    now: datetime,
    outcome: str,
    report: FireReport,
    *,
    detail: str = "",
    execution: Execution | None = None,
    fire: ScheduleFire | None = None,
) -> ScheduleFire:
    fire = fire or ScheduleFire(agent_id=schedule.agent_id, fire_at=fire_at)
    fire.handled_at, fire.outcome, fire.execution = now, outcome, execution
    fire.detail = detail[:500]
    if fire.pk is None:
        fire.missed, fire.late_seconds = report.missed, report.late_seconds
    fire.save()
    return fire


def _drain(schedule: Schedule, now: datetime) -> int:
    """Start the oldest queued fire if no run of the agent is going. Returns 1 or 0."""
    fire = (
        ScheduleFire.objects.filter(agent_id=schedule.agent_id, outcome=Outcome.QUEUED)
        .order_by("fire_at")
        .first()
    )
    if fire is None or _going(schedule) is not None:
        return 0
    if not schedule.active:
        fire.outcome, fire.detail, fire.handled_at = Outcome.SKIPPED_OVERLAP, "schedule off", now
        fire.save()
        return 0
    _trigger(schedule, fire.fire_at, now, FireReport(), fire=fire)
    return 1


def _alert_missed(schedule: Schedule, fire_at: datetime, report: FireReport) -> None:
    """Beat or the workers were down or stuck: say so where people look."""
    audit_schedule(
        SCHEDULER,
        "schedule.missed",
        schedule,
        None,
        fire_at=fire_at.isoformat(),
        late_seconds=round(report.late_seconds, 1),
        missed=report.missed,
        catch_up=schedule.catch_up,
        outcome=report.outcome,
    )
    detail = (
        f"The fire of {fire_at:%Y-%m-%d %H:%M} UTC ran {report.late_seconds:.0f} s late"
        if report.outcome == Outcome.TRIGGERED
        else f"The fire of {fire_at:%Y-%m-%d %H:%M} UTC could not run on time"
    ) + (f", and {report.missed} earlier fire(s) did not run" if report.missed else "")
    notify_after_commit(schedule, "missed", detail + ": is celery beat running, and a worker?")


def cron_run_ended(transition: Transition) -> None:
    """``run_moved``, in the transaction of a cron run's terminal transition: success clears
    the failure count; a failure or a timeout adds one, and the ``pause_after_failures``-th in
    a row pauses the schedule (and tells the owner). A fire queued behind the run is started
    after commit."""
    execution, status = transition.execution, transition.to
    if not transition.ended or execution.trigger_source != Execution.Source.CRON:
        return
    agent_id = execution.agent_id
    if status == Execution.Status.SUCCESS:
        Schedule.objects.filter(pk=agent_id, consecutive_failures__gt=0).update(
            consecutive_failures=0
        )
    elif status in (Execution.Status.FAILED, Execution.Status.TIMED_OUT):
        schedule = (
            Schedule.objects.select_for_update(of=("self",))
            .select_related("agent", "periodic_task")
            .filter(pk=agent_id)
            .first()
        )
        if schedule is not None:
            schedule.consecutive_failures += 1
            limit = schedule.pause_after_failures
            if limit and schedule.consecutive_failures >= limit and not schedule.paused:
                reason = (
                    f"{schedule.consecutive_failures} failed runs in a row; last: "
                    f"{execution.error_message or status}"
                )
                pause_schedule(SCHEDULER, schedule, reason, timezone.now())
                notify_after_commit(schedule, "paused", reason)
            schedule.save()
    if ScheduleFire.objects.filter(agent_id=agent_id, outcome=Outcome.QUEUED).exists():
        transaction.on_commit(
            partial(celery_app.send_task, FIRE_TASK, args=[str(agent_id)], queue="default")
        )


@dataclass
class TickReport:
    fired: int = 0
    drained: int = 0
    adopted: int = 0  # cron agents found without a schedule (data from before schedules)


def _adopt_unscheduled(now: datetime) -> int:
    """Active agents whose production version is cron but that have no schedule — made
    before this code, or by a path around the agent services — get one now."""
    missing = Agent.objects.filter(
        status=Agent.Status.ACTIVE,
        production_version__config__trigger__type="cron",
        schedule__isnull=True,
    ).values_list("pk", flat=True)
    adopted = 0
    for agent_id in list(missing[:100]):
        with transaction.atomic():
            agent = (
                Agent.objects.select_for_update(of=("self",))
                .select_related("production_version")
                .get(pk=agent_id)
            )
            if schedule_sync(actor=SCHEDULER, agent=agent, now=now) is not None:
                adopted += 1
    return adopted


def schedules_tick(now: datetime | None = None) -> TickReport:
    """The safety net, on beat every ``SCHEDULES_INTERVAL_SECONDS``: schedules whose fire is
    due and not handled (beat's entry lost a tick, a DST edge beat reads differently, beat
    was down), queued fires whose blocking run has ended, and cron agents without a
    schedule yet."""
    now = now or timezone.now()
    report = TickReport(adopted=_adopt_unscheduled(now))
    overdue = Schedule.objects.filter(active=True, due_at__lte=now).values_list("pk", flat=True)
    queued = ScheduleFire.objects.filter(outcome=Outcome.QUEUED).values_list("agent_id", flat=True)
    for agent_id in sorted(set(overdue) | set(queued), key=str):
        try:
            fired = schedule_fire(agent_id, now)
        except Exception:
            logger.exception("schedule of agent %s: the fire failed", agent_id)
            continue
        if fired is not None:
            report.fired += fired.handled is not None
            report.drained += fired.drained
    return report
