"""What the agent page, the API and the agents list show of a schedule."""

from __future__ import annotations

import zoneinfo
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db.models import Q, QuerySet
from django.utils import timezone

from agents.models import Agent
from controlplane import cron
from schedules.models import Schedule, ScheduleFire
from schedules.services import grace


@dataclass
class ScheduleView:
    schedule: Schedule
    description: str
    next_fires: list[datetime]  # UTC instants; the page shows them in the schedule's zone
    last_fires: list[ScheduleFire] = field(default_factory=list)
    overdue_since: datetime | None = None  # the fire beat should have rung and has not

    @property
    def state(self) -> str:
        if self.schedule.paused:
            return "paused"
        if self.schedule.active:
            return "overdue" if self.overdue_since else "active"
        return "off" if self.schedule.periodic_task_id else "removed"

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.schedule.timezone)

    @property
    def next_fires_local(self) -> list[datetime]:
        return [instant.astimezone(self.zone) for instant in self.next_fires]


def overdue_since(schedule: Schedule, now: datetime) -> datetime | None:
    """An active schedule whose next fire (plus jitter) is more than the grace ago: beat or
    the workers are down or stuck, now."""
    if schedule.active and schedule.due_at and schedule.due_at < now - grace():
        return schedule.next_fire_at
    return None


def schedule_view(
    *, agent: Agent, now: datetime | None = None, upcoming: int = 5, last: int = 10
) -> ScheduleView | None:
    """The agent's schedule, or None if it never had one. Next fires are computed from the
    cursor while active; "what it would do" from now while it is off."""
    schedule = Schedule.objects.filter(agent=agent).first()
    if schedule is None:
        return None
    now = now or timezone.now()
    spec = cron.parse(schedule.expression)
    start = schedule.cursor if schedule.active else now
    view = ScheduleView(
        schedule=schedule,
        description=cron.describe(spec, schedule.timezone),
        next_fires=cron.next_fires(spec, zoneinfo.ZoneInfo(schedule.timezone), start, upcoming),
        overdue_since=overdue_since(schedule, now),
    )
    view.last_fires = list(
        ScheduleFire.objects.filter(agent=agent)
        .select_related("execution")
        .order_by("-fire_at")[:last]
    )
    return view


@dataclass(frozen=True)
class Attention:
    agent: Agent
    problem: str  # paused | overdue | missed
    detail: str
    at: datetime | None


def schedules_needing_attention(
    *,
    agents: QuerySet[Agent, Any] | Collection[UUID],
    now: datetime | None = None,
    since: timedelta = timedelta(hours=24),
) -> list[Attention]:
    """For the console's alert list: schedules paused after failures, overdue now, or that
    missed fires in the last day — among ``agents`` (the ones the viewer may see)."""
    now = now or timezone.now()
    found: list[Attention] = []
    schedules = (
        Schedule.objects.filter(agent__in=agents)
        .filter(Q(paused_at__isnull=False) | Q(active=True, due_at__lt=now - grace()))
        .select_related("agent")
    )
    for schedule in schedules:
        if schedule.paused:
            found.append(
                Attention(schedule.agent, "paused", schedule.paused_reason, schedule.paused_at)
            )
        else:
            found.append(
                Attention(
                    schedule.agent,
                    "overdue",
                    f"should have fired at {schedule.next_fire_at:%Y-%m-%d %H:%M} UTC: is "
                    "celery beat running?",
                    schedule.next_fire_at,
                )
            )
    seen = {item.agent.pk for item in found}
    late = (
        ScheduleFire.objects.filter(agent__in=agents, handled_at__gte=now - since)
        .filter(Q(missed__gt=0) | Q(late_seconds__gt=grace().total_seconds()))
        .exclude(agent_id__in=seen)
        .select_related("agent")
        .order_by("-fire_at")[:500]
    )
    for fire in late:
        if fire.agent_id in seen:
            continue
        seen.add(fire.agent_id)
        found.append(
            Attention(
                fire.agent,
                "missed",
                f"{fire.missed + 1} fire(s) not run on time; handled "
                f"{fire.late_seconds:.0f} s late ({fire.get_outcome_display()})",
                fire.fire_at,
            )
        )
    return found
