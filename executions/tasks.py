"""Celery entry points: ids in, one service call, quiet when there is nothing to do."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from celery import Task, shared_task

from executions import event_triggers, maintenance, runtime


@shared_task(name="executions.tasks.execution_run", bind=True, ignore_result=True)
def execution_run(self: Task[..., Any], execution_id: str, attempt: int) -> str | None:
    """Run one execution. A repeated or stale delivery claims nothing and returns None."""
    return runtime.run_execution(
        execution_id=execution_id, attempt=attempt, worker=self.request.hostname or ""
    )


@shared_task(name="executions.tasks.maintenance_sweep", ignore_result=True)
def maintenance_sweep() -> dict[str, int]:
    return asdict(maintenance.sweep())


@shared_task(name="executions.tasks.maintenance_dispatch_due", ignore_result=True)
def maintenance_dispatch_due(agent_id: str | None = None) -> int:
    """Scheduled runs whose time has come; with ``agent_id`` (sent when one of its runs
    freed a concurrency slot), that agent's runs waiting for a slot."""
    return maintenance.dispatch_due(agent_id=agent_id)


@shared_task(name="executions.tasks.event_chain", ignore_result=True)
def event_chain(execution_id: str) -> int:
    """A run ended: start the runs of the agents that follow it; returns how many."""
    fanout = event_triggers.event_chain(execution_id)
    return len(fanout.triggered) if fanout else 0
