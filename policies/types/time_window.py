"""Time window: runs start only on ``allowed_days`` at ``allowed_hours`` (local time in
``timezone``), never on ``blackout_dates``; outside it a run is refused or delayed to the
next allowed moment (walked hour by hour, right across DST)."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from django import forms
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from controlplane.serializers import (
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    TimeZoneField,
)
from policies.types.base import DAYS, Compiled, Evaluation, PolicyType, Verdict, rules_list, zone_of
from policies.types.fields import LinesField, RulesForm, checkboxes, pairs, rule_choice, zone_field


class TimeWindowRules(StrictSerializer):
    allowed_days = rules_list(
        serializers.ChoiceField(choices=DAYS), default=list(DAYS), min_length=1
    )
    allowed_hours = rules_list(
        StrictIntegerField(min_value=0, max_value=23), default=lambda: list(range(24)), min_length=1
    )
    timezone = TimeZoneField()
    blackout_dates = rules_list(StrictCharField(max_length=10), default=list)
    action_on_violation = serializers.ChoiceField(
        choices=["reject", "delay_until_allowed"], default="reject"
    )

    def validate_blackout_dates(self, value: list[str]) -> list[str]:
        for text in value:
            try:
                date.fromisoformat(text)
            except ValueError:
                raise ValidationError(f"{text!r} is not a date (YYYY-MM-DD).") from None
        return sorted(set(value))

    def validate_allowed_days(self, value: list[str]) -> list[str]:
        return [day for day in DAYS if day in value]

    def validate_allowed_hours(self, value: list[int]) -> list[int]:
        return sorted(set(value))


class TimeWindowForm(RulesForm):
    policy_type = "time_window"
    rules_class = TimeWindowRules
    allowed_days = checkboxes(pairs(DAYS), label="Allowed days", initial=list(DAYS))
    allowed_hours = forms.TypedMultipleChoiceField(
        choices=[(hour, f"{hour:02d}") for hour in range(24)],
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        initial=list(range(24)),
        label="Allowed hours",
        help_text="The hours (local time) a run may start in: 09 means 09:00 to 09:59.",
    )
    timezone = zone_field("An IANA time zone, e.g. America/New_York.")
    blackout_dates = LinesField(label="Blackout dates", help_text="YYYY-MM-DD, one per line.")
    action_on_violation = rule_choice(
        TimeWindowRules,
        "action_on_violation",
        label="Outside the window",
        help_text="reject: the run is blocked; delay_until_allowed: it is scheduled for the "
        "next allowed moment.",
    )

    def to_rules(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        rules = super().to_rules(cleaned)
        rules["allowed_days"] = cleaned.get("allowed_days", [])
        rules["allowed_hours"] = cleaned.get("allowed_hours", [])
        return rules


def evaluate(evaluation: Evaluation, policy: Compiled[zoneinfo.ZoneInfo | None]) -> Verdict:
    """Pass inside the window; outside it, refuse or delay to the next allowed moment."""
    if evaluation.context.kind != "trigger":
        return Verdict("not_applicable", "time windows apply to runs")
    rules, zone = policy.rules, policy.ahead
    local = evaluation.at.astimezone(zone)
    if _in_window(local, rules):
        return Verdict("pass", f"{local:%a %H:%M} {rules['timezone']} is inside the window")
    reason = f"{local:%a %Y-%m-%d %H:%M} {rules['timezone']} is outside the allowed window"
    if rules["action_on_violation"] == "delay_until_allowed":
        # The stored rules always name a time zone (default UTC): ``zone_of`` found it.
        until = next_allowed(evaluation.at, rules, cast(zoneinfo.ZoneInfo, zone))
        if until is None:
            return Verdict("deny", f"{reason}, and no allowed moment in the next 366 days")
        return Verdict(
            "delay",
            f"{reason}; delayed to {until.astimezone(zone):%a %Y-%m-%d %H:%M %Z}",
            delay_until=until,
        )
    return Verdict("deny", reason)


def _in_window(local: datetime, rules: dict[str, Any]) -> bool:
    """An allowed day and hour, and no blackout date (local time)."""
    return (
        DAYS[local.weekday()] in rules["allowed_days"]
        and local.hour in rules["allowed_hours"]
        and local.date().isoformat() not in rules["blackout_dates"]
    )


def next_allowed(at: datetime, rules: dict[str, Any], zone: zoneinfo.ZoneInfo) -> datetime | None:
    """The first hour after ``at`` that is inside the window, right across DST: the local
    wall clock is walked hour by hour; an hour that does not exist that day (spring
    forward) is skipped, and a repeated one (fall back) is taken at its first occurrence."""
    wall = at.astimezone(zone).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    for _ in range(366 * 24):
        wall += timedelta(hours=1)
        aware = wall.replace(tzinfo=zone)
        exists = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall
        if exists and _in_window(aware, rules):
            return aware
    return None


POLICY_TYPE = PolicyType(
    name="time_window",
    rules=TimeWindowRules,
    form=TimeWindowForm,
    evaluate=evaluate,
    prepare=zone_of,
)
