"""The maintenance sweep: due scheduled runs, lost messages, dead workers, deadlines."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from agents.models import Agent
from controlplane.access import Actor
from executions import services
from executions.maintenance import sweep
from executions.models import Execution
from executions.runtime import run_execution
from executions.tasks import maintenance_sweep
from executions.trigger import TriggerRequest, execution_trigger
from tests import factories

pytestmark = pytest.mark.django_db


def queued(owner: Any) -> Execution:
    agent = Agent.objects.filter(name="runner").first() or factories.runnable_agent(owner)
    return execution_trigger(
        TriggerRequest(actor=Actor(user=owner), agent=agent, input={}, source="api")
    ).execution


def running(owner: Any, *, heartbeat_age: int = 0, **fields: Any) -> Execution:
    execution = queued(owner)
    now = timezone.now()
    services.execution_transition(
        execution_id=execution.pk,
        to="running",
        expect={"queued"},
        fields={
            "heartbeat_at": now - timedelta(seconds=heartbeat_age),
            "started_at": now,
            "deadline_at": now + timedelta(minutes=5),
            **fields,
        },
    )
    execution.refresh_from_db()
    return execution


def enqueued_messages(callbacks: list[Any]) -> list[tuple[str, int]]:
    """(execution id, attempt) of each run task an on-commit callback would send."""
    return [tuple(callback.args) for callback in callbacks if getattr(callback, "args", None)]


def test_due_scheduled_runs_are_queued(owner: Any, django_capture_on_commit_callbacks: Any) -> None:
    execution = queued(owner)
    Execution.objects.filter(pk=execution.pk).update(
        status="scheduled", not_before=timezone.now() - timedelta(seconds=1)
    )
    later = queued(owner)
    Execution.objects.filter(pk=later.pk).update(
        status="scheduled", not_before=timezone.now() + timedelta(hours=1)
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report = sweep()

    assert report.dispatched == 1
    assert Execution.objects.get(pk=execution.pk).status == "queued"
    assert Execution.objects.get(pk=later.pk).status == "scheduled"
    assert enqueued_messages(callbacks) == [(str(execution.pk), 1)]


def test_queued_runs_whose_message_may_be_lost_are_enqueued_again(
    owner: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EXECUTION_REQUEUE_AFTER_SECONDS = 60
    old = queued(owner)
    Execution.objects.filter(pk=old.pk).update(enqueued_at=timezone.now() - timedelta(seconds=61))
    fresh = queued(owner)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = sweep()
        second = sweep()

    assert (first.requeued, second.requeued) == (1, 0)  # bumped: not re-sent at every sweep
    assert enqueued_messages(callbacks) == [(str(old.pk), 1)]
    assert Execution.objects.get(pk=fresh.pk).status == "queued"


def test_a_run_whose_worker_stopped_beating_is_requeued_for_its_next_attempt(
    owner: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EXECUTION_HEARTBEAT_TIMEOUT_SECONDS = 30
    lost = running(owner, heartbeat_age=31)
    alive = running(owner, heartbeat_age=5)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report = sweep()

    lost.refresh_from_db()
    assert report.reaped == 1
    assert (lost.status, lost.attempt, lost.worker) == ("queued", 2, "")
    assert Execution.objects.get(pk=alive.pk).status == "running"
    assert (str(lost.pk), 2) in enqueued_messages(callbacks)
    # The lost worker's own message (attempt 1), if redelivered, claims nothing.
    assert run_execution(execution_id=str(lost.pk), attempt=1) is None
    assert run_execution(execution_id=str(lost.pk), attempt=2) == "success"


def test_after_the_last_attempt_a_lost_run_fails(owner: Any, settings: Any) -> None:
    settings.EXECUTION_MAX_ATTEMPTS = 2
    settings.EXECUTION_HEARTBEAT_TIMEOUT_SECONDS = 30
    lost = running(owner, heartbeat_age=31)
    Execution.objects.filter(pk=lost.pk).update(attempt=2)

    report = sweep()

    lost.refresh_from_db()
    assert report.failed_lost == 1
    assert (lost.status, lost.error_type) == ("failed", "worker_lost")


def test_runs_past_their_deadline_time_out(owner: Any, settings: Any) -> None:
    settings.EXECUTION_TIMEOUT_GRACE_SECONDS = 10
    waiting = running(owner, awaiting_report=True)
    Execution.objects.filter(pk=waiting.pk).update(
        deadline_at=timezone.now() - timedelta(seconds=11),
        heartbeat_at=timezone.now() - timedelta(days=1),
    )

    report = sweep()

    waiting.refresh_from_db()
    assert report.timed_out == 1
    assert report.reaped == 0  # an external runtime's run has no heartbeat to miss
    assert waiting.status == "timed_out"
    assert "never reported" in waiting.error_message


def test_the_task_is_idempotent(owner: Any, settings: Any) -> None:
    settings.EXECUTION_HEARTBEAT_TIMEOUT_SECONDS = 30
    lost = running(owner, heartbeat_age=31)

    first = maintenance_sweep()
    second = maintenance_sweep()

    assert first["reaped"] == 1 and second["reaped"] == 0
    assert Execution.objects.get(pk=lost.pk).attempt == 2
