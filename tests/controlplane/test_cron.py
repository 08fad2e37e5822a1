"""The calendar of a cron schedule, with an injected clock: time zones, both DST changes,
catch-up counts, the alias and error forms, the beat fields."""

from __future__ import annotations

import itertools
import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.cron import (
    CronError,
    crontab_fields,
    describe,
    due,
    fires,
    jitter,
    next_fires,
    parse,
)

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: zoneinfo.ZoneInfo, instants: list[datetime]) -> list[str]:
    return [f"{i.astimezone(zone):%a %Y-%m-%d %H:%M %Z}" for i in instants]


def test_weekday_mornings_in_paris_keep_local_time_across_the_spring_change() -> None:
    spec = parse("0 9 * * 1-5")
    found = next_fires(spec, PARIS, utc(2026, 3, 26, 12), 3)
    assert local(PARIS, found) == [
        "Fri 2026-03-27 09:00 CET",
        "Mon 2026-03-30 09:00 CEST",
        "Tue 2026-03-31 09:00 CEST",
    ]
    # The same wall-clock time is a different UTC hour on each side of the change.
    assert [i.hour for i in found] == [8, 7, 7]


def test_a_time_that_does_not_exist_fires_shifted_forward_by_the_gap() -> None:
    # Paris, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    found = next_fires(parse("30 2 * * *"), PARIS, utc(2026, 3, 28, 12), 3)
    assert local(PARIS, found) == [
        "Sun 2026-03-29 03:30 CEST",
        "Mon 2026-03-30 02:30 CEST",
        "Tue 2026-03-31 02:30 CEST",
    ]


def test_every_quarter_hour_fires_once_per_real_instant_through_the_gap() -> None:
    found = list(
        fires(parse("*/15 * * * *"), PARIS, utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30))
    )
    # 00:45 UTC = 01:45 CET; then 01:00 UTC = 03:00 CEST: the missing hour's times shifted
    # onto real instants that fire once each, no duplicates.
    assert local(PARIS, found) == [
        "Sun 2026-03-29 01:45 CET",
        "Sun 2026-03-29 03:00 CEST",
        "Sun 2026-03-29 03:15 CEST",
        "Sun 2026-03-29 03:30 CEST",
    ]
    assert len(found) == len(set(found))


def test_a_repeated_time_fires_once_for_a_fixed_hour_schedule() -> None:
    # Paris, 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    found = list(fires(parse("30 2 * * *"), PARIS, utc(2026, 10, 24, 12), utc(2026, 10, 26, 12)))
    assert local(PARIS, found) == ["Sun 2026-10-25 02:30 CEST", "Mon 2026-10-26 02:30 CET"]


def test_an_hourly_schedule_keeps_its_rhythm_through_the_repeated_hour() -> None:
    found = list(
        fires(parse("0 * * * *"), PARIS, utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 2, 30))
    )
    assert local(PARIS, found) == [
        "Sun 2026-10-25 01:00 CEST",
        "Sun 2026-10-25 02:00 CEST",
        "Sun 2026-10-25 02:00 CET",
        "Sun 2026-10-25 03:00 CET",
    ]
    assert [b - a for a, b in itertools.pairwise(found)] == [timedelta(hours=1)] * 3


def test_new_york_changes_on_its_own_dates() -> None:
    # 2026-03-08 in New York (Paris changes three weeks later).
    found = next_fires(parse("30 2 * * *"), NEW_YORK, utc(2026, 3, 7, 12), 2)
    assert local(NEW_YORK, found) == ["Sun 2026-03-08 03:30 EDT", "Mon 2026-03-09 02:30 EDT"]
    found = next_fires(parse("0 9 * * *"), NEW_YORK, utc(2026, 11, 1, 0), 2)
    assert [i.hour for i in found] == [14, 14]  # 09:00 EST = 14:00 UTC both days


def test_due_counts_the_fires_missed_and_names_the_latest() -> None:
    spec = parse("*/5 * * * *")
    latest, count = due(spec, UTC, utc(2026, 5, 1, 10, 0), utc(2026, 5, 1, 10, 27, 30))
    assert (latest, count) == (utc(2026, 5, 1, 10, 25), 5)
    assert due(spec, UTC, utc(2026, 5, 1, 10, 25), utc(2026, 5, 1, 10, 29)) == (None, 0)
    # A fire exactly at the end of the span is due; the start is excluded.
    assert due(spec, UTC, utc(2026, 5, 1, 10, 25), utc(2026, 5, 1, 10, 30)) == (
        utc(2026, 5, 1, 10, 30),
        1,
    )


def test_due_over_a_long_downtime_is_capped_but_still_finds_the_latest() -> None:
    latest, count = due(
        parse("* * * * *"), UTC, utc(2026, 1, 1), utc(2026, 3, 1, 0, 0, 30), cap=1000
    )
    assert latest == utc(2026, 3, 1)
    assert count == 1000


def test_day_names_month_names_aliases_and_sunday_as_seven() -> None:
    assert parse("0 9 * * mon-fri").weekdays == frozenset({1, 2, 3, 4, 5})
    assert parse("0 9 * * 7").weekdays == frozenset({0})
    assert parse("0 0 1 jan-mar *").months == frozenset({1, 2, 3})
    daily = parse("@daily")
    assert (daily.minutes, daily.hours, daily.expression) == ((0,), (0,), "@daily")
    # Sundays only: 2026-11-22 is a Sunday.
    assert next_fires(parse("0 8 * * 0"), UTC, utc(2026, 11, 21), 1) == [utc(2026, 11, 22, 8)]


def test_a_day_of_the_month_limited_schedule_waits_for_the_day() -> None:
    assert next_fires(parse("0 0 29 2 *"), UTC, utc(2026, 3, 1), 1) == [utc(2028, 2, 29)]
    assert next_fires(parse("0 0 31 * *"), UTC, utc(2026, 4, 1), 2) == [
        utc(2026, 5, 31),
        utc(2026, 7, 31),
    ]


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("", "five fields"),
        ("0 9 * *", "five fields"),
        ("0 0 9 * * *", "five fields"),
        ("61 * * * *", "not a cron expression"),
        ("0 25 * * *", "not a cron expression"),
        ("0 9 L * *", "not supported"),
        ("0 9 * * 1#2", "not supported"),
        ("0 9 ? * *", "not supported"),
        ("@reboot", "not a schedule"),
        ("0 9 1 * 1", "not both"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expression: str, says: str) -> None:
    with pytest.raises(CronError, match=says):
        parse(expression)


def test_the_beat_fields_say_the_same_schedule_in_celery_terms() -> None:
    assert crontab_fields(parse("*/15 8-18/2 * jan-mar mon-fri")) == {
        "minute": "0,15,30,45",
        "hour": "8,10,12,14,16,18",
        "day_of_month": "*",
        "month_of_year": "1,2,3",
        "day_of_week": "1,2,3,4,5",
    }
    assert crontab_fields(parse("0 9 * * 7"))["day_of_week"] == "0"


def test_the_schedule_in_words_with_its_time_zone() -> None:
    assert describe(parse("0 9 * * 1-5"), "Europe/Paris") == (
        "At 09:00, Monday through Friday, Europe/Paris"
    )


def test_jitter_is_the_same_everywhere_and_within_bounds() -> None:
    at = utc(2026, 5, 1, 9)
    assert jitter("agent", at, 0) == 0
    values = {jitter("agent", at + timedelta(minutes=i), 30) for i in range(200)}
    assert values <= set(range(31))
    assert len(values) > 10  # spread, not constant
    assert jitter("agent", at, 30) == jitter("agent", at, 30)
