"""The dashboard's failure panels: the last 24 h's failures by error type, and the agents
whose success rate dropped against the week before — over the viewer's agents
(``console.dashboard.scope``) and the window's cells."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from uuid import UUID

from django.db.models import Count, Max, Q

from console.dashboard import FAILED, Cell, Scope, Window, days_summed, window_cells
from executions.models import Execution
from executions.rollups import FINISHED, day_start, since_except_q

S = Execution.Status
# A drop is listed when the last 24 h's success rate is this many points under the 7 days
# before, over at least this many finished runs in the last 24 h.
DROP_POINTS = 20
DROP_MIN_RUNS = 5
BASELINE_DAYS = 7


@dataclass(frozen=True)
class FailureGroup:
    error_type: str
    runs: int
    agents: int
    latest: datetime


def failure_groups(*, scope: Scope, at: Window) -> list[FailureGroup]:
    """Runs created in the last 24 h that failed or timed out, by ``error_type``: how many,
    over how many agents, the latest; most frequent first."""
    rows = (
        scope.runs()
        .filter(created_at__gte=at.day_ago, status__in=FAILED)
        .values("error_type")
        .annotate(runs=Count("pk"), agents=Count("agent", distinct=True), latest=Max("created_at"))
        .order_by("-runs", "error_type")
    )
    return [
        FailureGroup(row["error_type"], row["runs"], row["agents"], row["latest"]) for row in rows
    ]


@dataclass(frozen=True)
class Drop:
    name: str
    recent_finished: int
    recent_succeeded: int
    baseline_finished: int
    baseline_succeeded: int

    @property
    def recent_rate(self) -> float:
        return 100 * self.recent_succeeded / self.recent_finished

    @property
    def baseline_rate(self) -> float:
        return 100 * self.baseline_succeeded / self.baseline_finished

    @property
    def drop(self) -> Fraction:
        """Percentage points lost, exactly (the threshold is compared without rounding)."""
        return 100 * (
            Fraction(self.baseline_succeeded, self.baseline_finished)
            - Fraction(self.recent_succeeded, self.recent_finished)
        )

    @property
    def points(self) -> float:
        return float(self.drop)


def success_rate_drops(
    *,
    scope: Scope,
    at: Window,
    days: set[date] | None = None,
    cells: list[Cell] | None = None,
) -> list[Drop]:
    """Agents whose success rate over the last 24 h is at least 20 points under their rate
    over the 7 days before, with at least 5 finished runs in the last 24 h and at least one
    in the 7 days before; the largest drop first. The whole UTC days of the 7 that are
    summed (``days``, default ``days_summed``) are taken from the window's ``cells`` (read
    if not given), the rest of the 8 days from the runs."""
    start = at.day_ago - timedelta(days=BASELINE_DAYS)
    days = days_summed(scope=scope, at=at) if days is None else days
    summed = {
        day
        for day in days
        if day_start(day) >= start and day_start(day + timedelta(days=1)) <= at.day_ago
    }
    # per agent: recent finished, recent succeeded, baseline finished, baseline succeeded
    totals: dict[UUID, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    if summed:
        for cell in window_cells(scope=scope, at=at, days=days) if cells is None else cells:
            if cell.day in summed:
                totals[cell.agent_id][2] += cell.finished
                totals[cell.agent_id][3] += cell.succeeded
    recent = Q(created_at__gte=at.day_ago)
    success = Q(status=S.SUCCESS)
    rows = (
        scope.runs()
        .filter(since_except_q(start, summed), status__in=FINISHED)
        .values("agent_id")
        .annotate(
            recent_finished=Count("pk", filter=recent),
            recent_succeeded=Count("pk", filter=recent & success),
            baseline_finished=Count("pk", filter=~recent),
            baseline_succeeded=Count("pk", filter=~recent & success),
        )
        .values_list(
            "agent_id",
            "recent_finished",
            "recent_succeeded",
            "baseline_finished",
            "baseline_succeeded",
        )
    )
    for agent_id, *figures in rows:
        totals[agent_id] = [
            kept + more for kept, more in zip(totals[agent_id], figures, strict=True)
        ]
    names = {agent.pk: agent.name for agent in scope.agents}
    drops = [
        Drop(names[agent_id], *figures)
        for agent_id, figures in totals.items()
        if figures[0] >= DROP_MIN_RUNS and figures[2] > 0 and agent_id in names
    ]
    return sorted(
        (drop for drop in drops if drop.drop >= DROP_POINTS), key=lambda d: (-d.drop, d.name)
    )
