"""Celery entry points for approvals: ids in, one service call."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.conf import settings

from approvals import notify, services


@shared_task(name="approvals.tasks.approval_notify", bind=True, ignore_result=True)
def approval_notify(
    self: Task[..., Any], approval_id: str, event: str, todo: list[str] | None = None
) -> None:
    """Notify about one request; a channel that failed is retried alone, with backoff, up to
    ``APPROVAL_NOTIFY_MAX_RETRIES`` times."""
    attempt = self.request.retries + 1
    final = self.request.retries >= settings.APPROVAL_NOTIFY_MAX_RETRIES
    try:
        notify.send(approval_id, event, todo or notify.channels(), attempt, final)
    except notify.NotifyFailed as failed:
        if final:
            return
        countdown = min(300, settings.APPROVAL_NOTIFY_RETRY_SECONDS * 2**self.request.retries)
        raise self.retry(
            args=(approval_id, event, failed.channels), countdown=countdown, exc=failed
        ) from None


@shared_task(name="approvals.tasks.maintenance_approvals", ignore_result=True)
def maintenance_approvals() -> dict[str, int]:
    """Every minute (beat): expire overdue requests, send the warnings that are due."""
    return {"expired": services.approval_expire_due(), "warned": services.approval_warn_due()}
