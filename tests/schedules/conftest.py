"""Cron agents for the schedule tests, and the clock they are read against."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import User

from schedules.models import Schedule
from schedules.services import set_next
from tests import factories
from tests.integrations.test_tools_email import mailbox  # noqa: F401 - a fixture


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def cron_agent(
    owner: User,
    schedule: str = "0 9 * * *",
    *,
    name: str = "cron-agent",
    zone: str = "UTC",
    llm: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    **trigger: Any,
) -> Any:
    """An active agent whose production version fires on ``schedule`` in ``zone``, with the
    trigger's other settings from ``trigger`` and the rest of the version from ``config``."""
    return factories.runnable_agent(
        owner,
        name=name,
        llm=llm or {"simulation": {"text": "Report done."}},
        trigger={"type": "cron", "schedule": schedule, "timezone": zone, **trigger},
        **(config or {}),
    )


def set_cursor(agent: Any, at: datetime) -> Schedule:
    """Pretend the schedule's last handled fire (or its start) was ``at``."""
    schedule = Schedule.objects.select_related("agent").get(agent=agent)
    schedule.cursor = at
    set_next(schedule)
    schedule.save()
    return schedule
