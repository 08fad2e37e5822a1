"""Celery entry points for schedules: ids in, one service call."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from celery import Task, shared_task
from django.conf import settings

from schedules import fires, notify


@shared_task(name="schedules.tasks.cron_fire", ignore_result=True)
def cron_fire(agent_id: str) -> str | None:
    """Beat's entry of one cron agent rings: handle what is due. A fire whose jitter has
    not passed is looked at again when it has."""
    report = fires.schedule_fire(agent_id)
    if report is None:
        return None
    if report.retry_in is not None and report.handled is None:
        cron_fire.apply_async(args=(agent_id,), countdown=report.retry_in)
    return report.outcome or None


@shared_task(name="schedules.tasks.maintenance_schedules", ignore_result=True)
def maintenance_schedules() -> dict[str, int]:
    """The safety net (beat, every ``SCHEDULES_INTERVAL_SECONDS``): overdue fires, queued
    fires whose blocking run ended."""
    return asdict(fires.schedules_tick())


@shared_task(name="schedules.tasks.schedule_notify", bind=True, ignore_result=True)
def schedule_notify(self: Task[..., Any], agent_id: str, event: str, detail: str) -> None:
    """Tell the agent's owner (and the admins) that its schedule missed a fire or paused;
    retried with backoff when the mail server refuses."""
    try:
        notify.send(agent_id, event, detail)
    except notify.NotifyFailed as failed:
        if self.request.retries >= settings.APPROVAL_NOTIFY_MAX_RETRIES:
            return
        countdown = min(300, settings.APPROVAL_NOTIFY_RETRY_SECONDS * 2**self.request.retries)
        raise self.retry(countdown=countdown, exc=failed) from None
