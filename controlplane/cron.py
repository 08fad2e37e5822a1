"""When a cron schedule fires, in its own time zone, right across daylight-saving changes.

Pure functions of (expression, time zone, instants): no clock is read here, so that the
calendar is tested with any "now". ``croniter`` parses and expands the expression; the walk
over local wall-clock times, and what a DST change does to it, is ours and is this:

- a wall-clock time that does not exist that day (spring forward: 02:30 in Paris on the last
  Sunday of March) fires when it would have, had the clock not jumped: shifted forward by the
  gap (03:30 local). Several such times that land on one instant fire once;
- a wall-clock time that happens twice (fall back: 02:30 on the last Sunday of October) fires
  once, at its first occurrence — unless the hour field is ``*``: an every-hour (or every-N-
  minutes) schedule keeps its real-time rhythm and fires in both.

Five fields (minute hour day-of-month month day-of-week) with numbers, names, ranges, steps
and lists, or an alias (@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually).
Not both a day of the month and a day of the week: cron runs on either, celery-beat on
both, so beat and this calendar would disagree.
"""

from __future__ import annotations

import hashlib
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import cast

from croniter import croniter

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
FIELD_CHARS = set("0123456789*/,-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# How far ahead the calendar looks for a fire (29 February on a schedule limited to it
# comes at least once in eight years).
HORIZON_DAYS = 366 * 8 + 2


class CronError(ValueError):
    pass


@dataclass(frozen=True)
class CronSpec:
    expression: str  # as given (an alias stays an alias)
    fields: tuple[str, str, str, str, str]  # the five fields, aliases expanded
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int] | None  # None: any day of the month
    months: frozenset[int]
    weekdays: frozenset[int] | None  # 0 = Sunday … 6 = Saturday; None: any day of the week
    every_hour: bool

    def runs_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        if self.days is not None and day.day not in self.days:
            return False
        return self.weekdays is None or (day.weekday() + 1) % 7 in self.weekdays


def parse(expression: str) -> CronSpec:
    """The schedule, or ``CronError`` saying what is wrong with it."""
    text = " ".join(str(expression).split())
    five = ALIASES.get(text.lower(), text)
    fields = five.split(" ")
    if text.startswith("@") and five == text:
        raise CronError(f"{text} is not a schedule; use one of {', '.join(ALIASES)}.")
    if len(fields) != 5:
        raise CronError(
            "Give five fields: minute hour day-of-month month day-of-week (e.g. '0 9 * * 1-5')."
        )
    if any(set(field) - FIELD_CHARS for field in fields):
        raise CronError(
            "Use numbers, names, ranges, steps and lists; L, W, # and ? are not supported."
        )
    try:
        expanded, _ = croniter.expand(five)
    except (ValueError, KeyError, TypeError) as exc:
        raise CronError(f"{text!r} is not a cron expression: {exc}") from None
    minutes, hours, days, months, weekdays = expanded
    minutes = list(range(60)) if minutes == ["*"] else minutes
    hours = list(range(24)) if hours == ["*"] else hours
    if any(
        value != "*" and not isinstance(value, int)
        for value in (*minutes, *hours, *days, *months, *weekdays)
    ):
        raise CronError(
            "Use numbers, names, ranges, steps and lists; L, W, # and ? are not supported."
        )
    any_day, any_weekday = days == ["*"], weekdays == ["*"]
    if not any_day and not any_weekday:
        raise CronError(
            "Give a day of the month or a day of the week, not both: cron runs on either, "
            "celery-beat only on both."
        )
    # Past these checks a field is numbers, or "*" alone (any), which is read as such here.
    return CronSpec(
        expression=text,
        fields=tuple(fields),  # type: ignore[arg-type]
        minutes=tuple(sorted(cast("list[int]", minutes))),
        hours=tuple(sorted(cast("list[int]", hours))),
        days=None if any_day else frozenset(cast("list[int]", days)),
        months=frozenset(range(1, 13)) if months == ["*"] else frozenset(cast("list[int]", months)),
        weekdays=None if any_weekday else frozenset(day % 7 for day in cast("list[int]", weekdays)),
        every_hour=len(hours) == 24,
    )


def _instants(spec: CronSpec, zone: zoneinfo.ZoneInfo, day: date) -> list[datetime]:
    """The UTC instants ``spec`` fires at on local ``day``, in order."""
    found: list[datetime] = []
    for hour in spec.hours:
        for minute in spec.minutes:
            wall = datetime(day.year, day.month, day.day, hour, minute)
            first = wall.replace(tzinfo=zone).astimezone(UTC)
            second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
            exists = first.astimezone(zone).replace(tzinfo=None) == wall
            # A time in the gap: fold=0 reads it with the offset before the jump, which is
            # the shift forward by the gap. A repeated time: fold=0 is its first occurrence.
            found.append(first)
            if exists and second != first and spec.every_hour:
                found.append(second)
    return sorted(set(found))


def fires(
    spec: CronSpec, zone: zoneinfo.ZoneInfo, after: datetime, until: datetime | None = None
) -> Iterator[datetime]:
    """The fire instants (UTC) strictly after ``after`` and, if given, at or before
    ``until``, in order; without ``until``, for ``HORIZON_DAYS``."""
    # A day's instants may fall on the previous or next UTC day; start one local day early.
    day = after.astimezone(zone).date() - timedelta(days=1)
    last = (until.astimezone(zone).date() + timedelta(days=1)) if until else None
    end = day + timedelta(days=HORIZON_DAYS)
    while day <= (last or end) and day <= end:
        if spec.runs_on(day):
            for instant in _instants(spec, zone, day):
                if instant <= after:
                    continue
                if until is not None and instant > until:
                    return
                yield instant
        day += timedelta(days=1)


def next_fires(
    spec: CronSpec, zone: zoneinfo.ZoneInfo, after: datetime, count: int = 5
) -> list[datetime]:
    found: list[datetime] = []
    for instant in fires(spec, zone, after):
        found.append(instant)
        if len(found) == count:
            break
    return found


def due(
    spec: CronSpec, zone: zoneinfo.ZoneInfo, after: datetime, until: datetime, cap: int = 100_000
) -> tuple[datetime | None, int]:
    """The latest fire in (after, until] and how many fires that span holds (counted up to
    ``cap``: a year of every minute is still counted in well under a second)."""
    latest, count = None, 0
    for instant in fires(spec, zone, after, until):
        latest, count = instant, count + 1
        if count >= cap:
            # Jump to the last fire before ``until`` without counting the rest.
            tail = list(fires(spec, zone, max(after, until - timedelta(days=2)), until))
            return (tail[-1] if tail else latest), count
    return latest, count


def jitter(seed: str, fire_at: datetime, seconds: int) -> int:
    """The delay (0 … seconds) of one fire: the same for every process that computes it."""
    if seconds <= 0:
        return 0
    digest = hashlib.sha256(f"{seed}|{fire_at.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (seconds + 1)


def describe(spec: CronSpec, zone_name: str) -> str:
    """The schedule in words: "At 09:00, Monday through Friday, Europe/Paris"."""
    from cron_descriptor import ExpressionDescriptor, Options

    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        words = ExpressionDescriptor(" ".join(spec.fields), options).get_description()
    except Exception:  # the descriptor is cosmetic: never let it fail a page
        words = " ".join(spec.fields)
    return f"{words}, {zone_name}"


def crontab_fields(spec: CronSpec) -> dict[str, str]:
    """The fields of django-celery-beat's ``CrontabSchedule`` (celery's day-of-week is 0-6
    with 0 = Sunday; names and ranges are written out as lists it reads the same way)."""

    def listed(values: frozenset[int] | tuple[int, ...] | None, everything: int) -> str:
        if values is None or len(values) == everything:
            return "*"
        return ",".join(str(value) for value in sorted(values))

    return {
        "minute": listed(spec.minutes, 60),
        "hour": listed(spec.hours, 24),
        "day_of_month": listed(spec.days, 31),
        "month_of_year": listed(spec.months, 12),
        "day_of_week": listed(spec.weekdays, 7),
    }
