"""Cron agents: keeping the beat entry in step with the agent; pausing and resuming it.

- ``schedule_sync`` — called when the agent services change an agent (promote, rollback,
  activate, pause, deprecate, archive: ``agents.services.agent_changed``) in their
  transaction, with the agent locked: the agent's ``Schedule`` and its django-celery-beat
  ``PeriodicTask`` follow the production version's cron trigger and the agent's status. An
  edit keeps the cursor, so the next fire is never lost.
- ``schedule_pause`` / ``schedule_resume`` — a person stops the schedule (not the agent);
  fires meanwhile are not caught up.

Each fire of a schedule is handled by ``schedules.fires``.
"""

from __future__ import annotations

import json
import zoneinfo
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from agents.models import Agent
from controlplane import cron
from controlplane.access import Actor, can
from controlplane.audit import audit_record
from controlplane.celery import app as celery_app
from controlplane.errors import Conflict, Forbidden
from schedules.models import Schedule

SCHEDULER = Actor.for_system("scheduler")
FIRE_TASK = "schedules.tasks.cron_fire"


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


def audit_schedule(
    actor: Actor,
    action: str,
    schedule: Schedule,
    before: dict[str, Any] | None = None,
    **after: Any,
) -> None:
    audit_record(
        actor=actor,
        action=action,
        target=schedule,
        before=before,
        after=after or _snapshot(schedule),
    )


def spec_of(schedule: Schedule) -> tuple[cron.CronSpec, zoneinfo.ZoneInfo]:
    return cron.parse(schedule.expression), zoneinfo.ZoneInfo(schedule.timezone)


def set_next(schedule: Schedule) -> None:
    """``next_fire_at`` / ``due_at`` after the cursor (none while inactive)."""
    if not schedule.active:
        schedule.next_fire_at = schedule.due_at = None
        return
    spec, zone = spec_of(schedule)
    upcoming = cron.next_fires(spec, zone, schedule.cursor, 1)
    schedule.next_fire_at = upcoming[0] if upcoming else None
    schedule.due_at = (
        schedule.next_fire_at + timedelta(seconds=jitter_of(schedule, schedule.next_fire_at))
        if schedule.next_fire_at
        else None
    )


def jitter_of(schedule: Schedule, fire_at: datetime) -> int:
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
        set_next(schedule)
        schedule.save()
        audit_schedule(actor, "schedule.removed", schedule, before)
        return schedule

    assert trigger is not None  # wanted: it has one
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
    set_next(schedule)
    _save_beat_entry(schedule, spec)
    schedule.save()
    after = _snapshot(schedule)
    if created:
        audit_schedule(actor, "schedule.created", schedule)
    elif after != before:
        audit_schedule(actor, "schedule.changed", schedule, before)
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
        pause_schedule(actor, schedule, reason or f"paused by {actor.label}", now or timezone.now())
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
        set_next(schedule)
        _enable_beat_entry(schedule)
        schedule.save()
        audit_schedule(actor, "schedule.resumed", schedule, before)
    return schedule


def lock_agent(agent_id: UUID | str) -> None:
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
    lock_agent(agent.pk)
    schedule = (
        Schedule.objects.select_for_update(of=("self",))
        .select_related("agent", "agent__production_version", "periodic_task")
        .filter(agent=agent)
        .first()
    )
    if schedule is None or not schedule.periodic_task_id:
        raise Conflict(f"Agent {agent.name!r} has no cron schedule.", code="no_schedule")
    return schedule


def pause_schedule(actor: Actor, schedule: Schedule, reason: str, now: datetime) -> None:
    before = _snapshot(schedule)
    schedule.paused_at, schedule.paused_reason = now, reason[:500]
    schedule.active = False
    set_next(schedule)
    _enable_beat_entry(schedule)
    audit_schedule(actor, "schedule.paused", schedule, before, reason=schedule.paused_reason)


def notify_after_commit(schedule: Schedule, event: str, detail: str) -> None:
    transaction.on_commit(
        partial(
            celery_app.send_task,
            "schedules.tasks.schedule_notify",
            args=[str(schedule.agent_id), event, detail],
            queue="default",
        )
    )
