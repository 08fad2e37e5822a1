"""Cron agents: keeping the beat entry in step with the agent, and handling each fire once.

- ``schedule_sync`` — called when the agent services change an agent (promote, rollback,
  activate, pause, deprecate, archive: ``agents.services.agent_changed``) in their
  transaction, with the agent locked: the agent's ``Schedule``
  and its django-celery-beat ``PeriodicTask`` follow the production version's cron trigger
  and the agent's status. An edit keeps the cursor, so the next fire is never lost.
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

A fire handled more than ``SCHEDULE_MISSED_GRACE_SECONDS`` late, or several fires at once,
means beat or the workers were down or stuck: that is an alert (audit event, e-mail to the
owner, the dashboard), and ``catch_up`` says whether it still runs once or is skipped.
"""

from __future__ import annotations

import json
import logging
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from agents.models import Agent
from controlplane import cron
from controlplane.access import Actor, can
from controlplane.audit import audit_record
from controlplane.errors import Conflict, Forbidden, ServiceError
from executions.lifecycle import Transition
from executions.models import Execution
from schedules.models import Schedule, ScheduleFire

logger = logging.getLogger(__name__)

SCHEDULER = Actor.for_system("scheduler")
FIRE_TASK = "schedules.tasks.cron_fire"
# Beat may ring a moment before the minute (its clock, rounding): a fire this close is due.
EARLY = timedelta(seconds=1)
GOING = frozenset(set(Execution.Status) - Execution.TERMINAL)
Outcome = ScheduleFire.Outcome


def grace() -> timedelta:
    return timedelta(seconds=settings.SCHEDULE_MISSED_GRACE_SECONDS)


def cron_trigger(agent: Agent) -> dict[str, Any] | None:
    """The production version's cron trigger, if it has one."""
    version = agent.production_version
    trigger = (version.config.get("trigger") or {}) if version else {}
    return trigger if trigger.get("type") == "cron" and trigger.get("schedule") else None


def _snapshot(schedule: Schedule | None) -> dict[str, Any] | None:
    if schedule is None:
        return None
    return {
        "expression": schedule.expression,
        "timezone": schedule.timezone,
        "active": schedule.active,
        "overlap": schedule.overlap,
        "catch_up": schedule.catch_up,
        "jitter_seconds": schedule.jitter_seconds,
        "pause_after_failures": schedule.pause_after_failures,
        "paused": schedule.paused,
        "version": str(schedule.version_id) if schedule.version_id else None,
    }


def _audit(actor: Actor, action: str, schedule: Schedule, before: Any = None, **after: Any) -> None:
    audit_record(
        actor=actor,
        action=action,
        target=schedule,
        before=before,
        after=after or _snapshot(schedule),
    )


def _spec(schedule: Schedule) -> tuple[cron.CronSpec, zoneinfo.ZoneInfo]:
    return cron.parse(schedule.expression), zoneinfo.ZoneInfo(schedule.timezone)


def _set_next(schedule: Schedule) -> None:
    """``next_fire_at`` / ``due_at`` after the cursor (none while inactive)."""
    if not schedule.active:
        schedule.next_fire_at = schedule.due_at = None
        return
    spec, zone = _spec(schedule)
    upcoming = cron.next_fires(spec, zone, schedule.cursor, 1)
    schedule.next_fire_at = upcoming[0] if upcoming else None
    schedule.due_at = (
        schedule.next_fire_at + timedelta(seconds=_jitter(schedule, schedule.next_fire_at))
        if schedule.next_fire_at
        else None
    )


def _jitter(schedule: Schedule, fire_at: datetime) -> int:
    return cron.jitter(str(schedule.agent_id), fire_at, schedule.jitter_seconds)


def _save_beat_entry(schedule: Schedule, spec: cron.CronSpec) -> None:
    crontab, _ = CrontabSchedule.objects.get_or_create(
        **cron.crontab_fields(spec), timezone=zoneinfo.ZoneInfo(schedule.timezone)
    )
    task = schedule.periodic_task or PeriodicTask(
        name=f"cron:{schedule.agent.name}:{schedule.agent_id}"
    )
    task.crontab, task.interval = crontab, None
    task.task = FIRE_TASK
    task.args = json.dumps([str(schedule.agent_id)])
    task.kwargs = "{}"
    task.queue = "default"
    task.enabled = schedule.active
    task.expire_seconds = settings.SCHEDULE_MISSED_GRACE_SECONDS
    task.description = cron.describe(spec, schedule.timezone)
    task.save()  # django-celery-beat's signal tells beat to reload its entries
    schedule.periodic_task = task


def _enable_beat_entry(schedule: Schedule) -> None:
    task = schedule.periodic_task
    if task is not None and task.enabled != schedule.active:
        task.enabled = schedule.active
        task.save()


def _remove_beat_entry(schedule: Schedule) -> None:
    if schedule.periodic_task_id:
        PeriodicTask.objects.filter(pk=schedule.periodic_task_id).delete()
        schedule.periodic_task = None


def schedule_sync(*, actor: Actor, agent: Agent, now: datetime | None = None) -> Schedule | None:
    """Make the agent's schedule and beat entry say what its production version and status
    say. Called in the agent service's transaction, the agent row locked."""
    now = now or timezone.now()
    trigger = cron_trigger(agent)
    wanted = trigger is not None and agent.status in (Agent.Status.ACTIVE, Agent.Status.PAUSED)
    schedule = Schedule.objects.select_for_update().filter(agent=agent).first()
    if not wanted:
        if schedule is None or (not schedule.active and not schedule.periodic_task_id):
            return schedule
        before = _snapshot(schedule)
        _remove_beat_entry(schedule)
        schedule.active = False
        _set_next(schedule)
        schedule.save()
        _audit(actor, "schedule.removed", schedule, before)
        return schedule

    spec = cron.parse(trigger["schedule"])
    zone = trigger.get("timezone") or "UTC"
    created = schedule is None
    if schedule is None:
        schedule = Schedule(agent=agent, cursor=now)
    schedule.agent = agent
    before = None if created else _snapshot(schedule)
    if not created and (schedule.expression, schedule.timezone) != (spec.expression, zone):
        # A new calendar counts from now — but a fire of the last moments that beat has
        # rung and a worker not yet handled is kept: editing never loses the next fire.
        schedule.cursor = max(schedule.cursor, now - grace())
    runs = agent.status == Agent.Status.ACTIVE and not schedule.paused
    if runs and not schedule.active:
        schedule.cursor = max(schedule.cursor, now)  # fires while it was off are not owed
    schedule.version = agent.production_version
    schedule.expression, schedule.timezone = spec.expression, zone
    schedule.input = trigger.get("input") or {}
    schedule.overlap = trigger.get("overlap") or Schedule.Overlap.SKIP
    schedule.catch_up = trigger.get("catch_up") or Schedule.CatchUp.ONCE
    schedule.jitter_seconds = trigger.get("jitter_seconds") or 0
    schedule.pause_after_failures = trigger.get(
        "pause_after_failures", settings.SCHEDULE_PAUSE_AFTER_FAILURES
    )
    schedule.active = runs
    _set_next(schedule)
    _save_beat_entry(schedule, spec)
    schedule.save()
    after = _snapshot(schedule)
    if created:
        _audit(actor, "schedule.created", schedule)
    elif after != before:
        _audit(actor, "schedule.changed", schedule, before)
    return schedule


def schedule_follow_agent(actor: Actor, agent: Agent) -> None:
    """``agents.services.agent_changed``: the schedule follows the agent, in its transaction."""
    schedule_sync(actor=actor, agent=agent)


def schedule_pause(
    *, actor: Actor, agent: Agent, reason: str = "", now: datetime | None = None
) -> Schedule:
    """Stop the schedule (not the agent) until ``schedule_resume``; fires meanwhile are not
    caught up."""
    with transaction.atomic():
        schedule = _locked(actor, agent)
        if schedule.paused:
            raise Conflict("The schedule is already paused.", code="schedule_paused")
        _pause(actor, schedule, reason or f"paused by {actor.label}", now or timezone.now())
        schedule.save()
    return schedule


def schedule_resume(*, actor: Actor, agent: Agent, now: datetime | None = None) -> Schedule:
    now = now or timezone.now()
    with transaction.atomic():
        schedule = _locked(actor, agent)
        if not schedule.paused:
            raise Conflict("The schedule is not paused.", code="schedule_not_paused")
        before = _snapshot(schedule)
        schedule.paused_at, schedule.paused_reason = None, ""
        schedule.consecutive_failures = 0
        schedule.active = schedule.agent.status == Agent.Status.ACTIVE and bool(
            cron_trigger(schedule.agent)
        )
        schedule.cursor = max(schedule.cursor, now)
        _set_next(schedule)
        _enable_beat_entry(schedule)
        schedule.save()
        _audit(actor, "schedule.resumed", schedule, before)
    return schedule


def _lock_agent(agent_id: Any) -> None:
    """Locks are taken agent first, then schedule, as the agent services take them (a
    promote holds the agent and syncs the schedule). ``FOR NO KEY UPDATE``: runs of the agent
    may still be inserted meanwhile (their foreign key takes ``FOR KEY SHARE``)."""
    list(
        Agent.objects.select_for_update(no_key=True)
        .filter(pk=agent_id)
        .values_list("pk", flat=True)
    )


def _locked(actor: Actor, agent: Agent) -> Schedule:
    if actor.kind != "system" and not can(actor, "agents.change_agent", agent):
        raise Forbidden("Pausing or resuming a schedule needs the right to change the agent.")
    _lock_agent(agent.pk)
    schedule = (
        Schedule.objects.select_for_update(of=("self",))
        .select_related("agent", "agent__production_version", "periodic_task")
        .filter(agent=agent)
        .first()
    )
    if schedule is None or not schedule.periodic_task_id:
        raise Conflict(f"Agent {agent.name!r} has no cron schedule.", code="no_schedule")
    return schedule


def _pause(actor: Actor, schedule: Schedule, reason: str, now: datetime) -> None:
    before = _snapshot(schedule)
    schedule.paused_at, schedule.paused_reason = now, reason[:500]
    schedule.active = False
    _set_next(schedule)
    _enable_beat_entry(schedule)
    _audit(actor, "schedule.paused", schedule, before, reason=schedule.paused_reason)


@dataclass
class FireReport:
    handled: datetime | None = None  # the fire handled (the latest due)
    outcome: str = ""
    execution_id: Any = None
    missed: int = 0
    late_seconds: float = 0.0
    drained: int = 0  # queued fires started
    retry_in: float | None = None  # its jitter has not passed yet: call again then


def schedule_fire(agent_id: Any, now: datetime | None = None) -> FireReport | None:
    """Handle what is due on the agent's schedule at ``now``: queued fires first (one, when
    no run of the agent is going), then the latest fire after the cursor. None when the
    agent has no active schedule."""
    now = now or timezone.now()
    with transaction.atomic():
        _lock_agent(agent_id)
        schedule = (
            Schedule.objects.select_for_update(of=("self",))
            .select_related("agent", "agent__production_version")
            .filter(pk=agent_id)
            .first()
        )
        if schedule is None:
            return None
        report = FireReport(drained=_drain(schedule, now))
        if not schedule.active:
            return report
        spec, zone = _spec(schedule)
        latest, count = cron.due(spec, zone, schedule.cursor, now + EARLY)
        if latest is None:
            return report
        due_at = latest + timedelta(seconds=_jitter(schedule, latest))
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
        _set_next(schedule)
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
    from executions.trigger import TriggerRequest, execution_trigger

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
        _audit(SCHEDULER, "schedule.fire_refused", schedule, None,
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
    _audit(
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
    _notify_after_commit(schedule, "missed", detail + ": is celery beat running, and a worker?")


def _notify_after_commit(schedule: Schedule, event: str, detail: str) -> None:
    from controlplane.celery import app as celery_app

    transaction.on_commit(
        partial(
            celery_app.send_task,
            "schedules.tasks.schedule_notify",
            args=[str(schedule.agent_id), event, detail],
            queue="default",
        )
    )


def cron_run_ended(transition: Transition) -> None:
    """``run_moved``, in the transaction of a cron run's terminal transition: success clears
    the failure count; a failure or a timeout adds one, and the ``pause_after_failures``-th in
    a row pauses the schedule (and tells the owner). A fire queued behind the run is started
    after commit."""
    from controlplane.celery import app as celery_app

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
                _pause(SCHEDULER, schedule, reason, timezone.now())
                _notify_after_commit(schedule, "paused", reason)
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
