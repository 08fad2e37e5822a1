"""Closed days' runs, summed: what the dashboard's 30-day panels read instead of the runs.

A UTC day is summed — a ``DayRollup`` row per agent and LLM provider, and a
``RolledUpDay`` saying the day is complete — once it has been over for ``SETTLE`` and
every run created on it has ended. A run that has ended no longer changes, so the sums
hold; today and any day not summed are read from the runs themselves, and the two add up
to the same figures (tested on the same runs both ways).

The maintenance sweep sums the last 30 days as they become ready (``sum_recent_days``),
and a reader that needs a day not summed yet sums it (``summed_days``); two racing insert
the same rows, and the second's are ignored. Should a run created on a summed day move all
the same (one whose creating transaction committed after the day was summed), the day is
forgotten (``forget_when_moved``, subscribed to ``executions.lifecycle.run_moved``) and the
next reader sums it again. Runs are created at the time they are created: runs loaded with older
``created_at`` values after their day was summed are counted once an admin drops that day's
sums (``days_forget``: the admin's "Summed days" list, action "Sum again").
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import BigIntegerField, Count, DecimalField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from controlplane.access import Actor, actor_is_admin
from controlplane.audit import audit_record
from controlplane.errors import Forbidden
from controlplane.models import AuditTarget
from executions.lifecycle import Transition
from executions.models import DayRollup, Execution, RolledUpDay

S = Execution.Status
FINISHED = (S.SUCCESS, S.FAILED, S.TIMED_OUT)  # ran to an outcome of their own
OPEN = tuple(status for status in S.values if status not in Execution.TERMINAL)
SETTLE = timedelta(hours=1)
# The column holds 12 digits; a sum over days of runs may need more, and Django fails to
# fit an aggregate into a field too small for it.
MONEY = DecimalField(max_digits=20, decimal_places=6)
SUMS = ("runs", "finished", "succeeded", "latency_sum", "latency_count", "cost")


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _ranges(days: Iterable[date]) -> list[tuple[datetime, datetime]]:
    """``days`` as ranges of instants, consecutive days making one range."""
    ranges: list[list[date]] = []
    for day in sorted(set(days)):
        if ranges and ranges[-1][1] == day:
            ranges[-1][1] = day + timedelta(days=1)
        else:
            ranges.append([day, day + timedelta(days=1)])
    return [(day_start(first), day_start(end)) for first, end in ranges]


def days_q(days: Iterable[date]) -> Q:
    """Runs created on any of ``days``, as ranges of ``created_at`` that the database reads
    from the index."""
    q = Q(pk__in=[])
    for start, end in _ranges(days):
        q |= Q(created_at__gte=start, created_at__lt=end)
    return q


def since_except_q(since: datetime, days: Iterable[date]) -> Q:
    """Runs created at ``since`` or later, except on ``days`` (read from their sums), as
    ranges of ``created_at``."""
    q = Q(pk__in=[])
    for start, end in _ranges(days):
        if start > since:
            q |= Q(created_at__gte=since, created_at__lt=start)
        since = max(since, end)
    return q | Q(created_at__gte=since)


def day_sums(runs: QuerySet[Execution]) -> QuerySet[Any]:
    """``runs`` grouped by agent, UTC day of creation and provider, as rows of the fields
    of a ``DayRollup`` (the sums 0 when no run had a cost or a latency)."""
    return (
        runs.order_by()  # the default ordering would join the GROUP BY and split the groups
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("agent_id", "day", "llm_provider")
        .annotate(
            runs=Count("pk"),
            finished=Count("pk", filter=Q(status__in=FINISHED)),
            succeeded=Count("pk", filter=Q(status=S.SUCCESS)),
            latency_sum=Coalesce(Sum("total_latency_ms"), 0, output_field=BigIntegerField()),
            latency_count=Count("total_latency_ms"),
            cost=Coalesce(Sum("estimated_cost_usd"), Value(Decimal(0)), output_field=MONEY),
        )
    )


def summed_days(days: Iterable[date], *, now: datetime) -> set[date]:
    """Of ``days``, those whose ``DayRollup`` rows are complete: summed before, or summed
    now if the day has settled and none of its runs is still open."""
    done, summed_now = _summed(days, now=now)
    return done | summed_now


def sum_recent_days(*, now: datetime, days: int = 30) -> int:
    """The maintenance sweep's part: sums the days of the last ``days`` that are ready, so
    that no page has to; returns how many it summed."""
    today = now.astimezone(UTC).date()
    _, summed_now = _summed((today - timedelta(days=n) for n in range(1, days + 1)), now=now)
    return len(summed_now)


def _summed(days: Iterable[date], *, now: datetime) -> tuple[set[date], set[date]]:
    """Of ``days``: those summed before, and those summed now."""
    settled = [day for day in set(days) if day_start(day) + timedelta(days=1) + SETTLE <= now]
    if not settled:
        return set(), set()
    done = set(RolledUpDay.objects.filter(day__in=settled).values_list("day", flat=True))
    missing = [day for day in settled if day not in done]
    return done, _sum(missing) if missing else set()


def _sum(days: list[date]) -> set[date]:
    """Sums the days of ``days`` none of whose runs is open; returns them."""
    open_days = set(
        Execution.objects.filter(days_q(days), status__in=OPEN)
        .order_by()
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values_list("day", flat=True)
        .distinct()
    )
    ready = [day for day in days if day not in open_days]
    if not ready:
        return set()
    rows = [DayRollup(**row) for row in day_sums(Execution.objects.filter(days_q(ready)))]
    # In one order for every reader: a reader inserting a row another reader inserted and
    # has not committed yet waits for it, and two readers going in different orders would
    # each wait for the other.
    rows.sort(key=lambda row: (row.day, str(row.agent_id), row.llm_provider))
    with transaction.atomic():
        DayRollup.objects.bulk_create(rows, ignore_conflicts=True)
        RolledUpDay.objects.bulk_create(
            [RolledUpDay(day=day) for day in sorted(ready)], ignore_conflicts=True
        )
    return set(ready)


def forget_day(created_at: datetime) -> None:
    """Drops the sums of the day a run was created on (in the caller's transaction)."""
    _forget([created_at.astimezone(UTC).date()])


def forget_when_moved(transition: Transition) -> None:
    """``run_moved``: a run created before today that moves makes its day be summed again."""
    created_at = transition.execution.created_at
    if created_at < day_start(timezone.now().astimezone(UTC).date()):
        forget_day(created_at)


def days_forget(*, actor: Actor, days: Iterable[date]) -> int:
    """Drops the sums of ``days`` for an admin (after runs were loaded with back-dated
    ``created_at`` values, say): the next reader sums them again. Audited; returns how many
    of the days were summed."""
    if not actor_is_admin(actor):
        raise Forbidden("Only an admin may drop the dashboard's sums.")
    days = sorted(set(days))
    if not days:
        return 0
    with transaction.atomic():
        forgotten = _forget(days)
        audit_record(
            actor=actor,
            action="rollup.forget",
            target=AuditTarget("rolled_up_day", f"{days[0]}..{days[-1]}"),
            after={"days": [day.isoformat() for day in days], "summed": forgotten},
        )
    return forgotten


def _forget(days: list[date]) -> int:
    """Returns how many of ``days`` were summed; their rows go with them (a day's rows and
    its marker are written in one transaction, so a day without a marker has no rows)."""
    forgotten, _ = RolledUpDay.objects.filter(day__in=days).delete()
    if forgotten:
        DayRollup.objects.filter(day__in=days).delete()
    return forgotten
