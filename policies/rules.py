"""What valid ``rules`` are, per policy type, in one place (the API, the admin, the console
and the demo loader all validate through ``validated_rules``).

Each type has a strict serializer (unknown keys and wrong JSON types are errors); the
stored form has every key, with its default. Seed 000's examples are valid as written.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from controlplane.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
    TimeZoneField,
)
from integrations.catalog import DESTINATIONS, LLM_PROVIDERS, TOOLS

DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
RISK_LEVELS = ("low", "medium", "high", "critical")
COMPLEXITIES = ("simple", "medium", "complex")
APPROVABLE_ACTIONS = ("execute", *sorted(TOOLS))
_APPROVER = re.compile(r"^(group:[\w.@+-]{1,150}|[^@\s]+@[^@\s]+\.[^@\s]+)$")


def _list(child: serializers.Field, **kwargs: Any) -> serializers.ListField:
    return serializers.ListField(child=child, max_length=kwargs.pop("max_length", 500), **kwargs)


class RateLimitRules(StrictSerializer):
    max_executions = StrictIntegerField(min_value=1, max_value=10_000_000)
    window_minutes = StrictIntegerField(min_value=1, max_value=43_200)  # up to 30 days
    action_on_violation = serializers.ChoiceField(choices=["reject", "queue"], default="reject")


class ApprovalRules(StrictSerializer):
    require_approval_for = _list(serializers.ChoiceField(choices=APPROVABLE_ACTIONS), min_length=1)
    approvers = _list(StrictCharField(max_length=254), default=list)
    required_approvals = StrictIntegerField(min_value=1, max_value=20, default=1)
    auto_expire_hours = StrictFloatField(min_value=0.01, max_value=720, default=24)
    risk_threshold = serializers.ChoiceField(choices=RISK_LEVELS, default="medium")
    on_expire = serializers.ChoiceField(choices=["reject", "approve"], default="reject")
    on_reject = serializers.ChoiceField(choices=["tool_error", "cancel"], default="tool_error")
    allow_self_approval = StrictBooleanField(default=False)
    warn_before_minutes = StrictIntegerField(
        min_value=1, max_value=43_200, required=False, allow_null=True, default=None
    )

    def validate_approvers(self, value: list[str]) -> list[str]:
        for approver in value:
            if not _APPROVER.match(approver):
                raise ValidationError(f"{approver!r} is neither an e-mail address nor group:NAME.")
        return list(dict.fromkeys(value))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        people = [a for a in attrs.get("approvers", []) if not a.startswith("group:")]
        groups = [a for a in attrs.get("approvers", []) if a.startswith("group:")]
        if not groups and people and attrs.get("required_approvals", 1) > len(people):
            raise ValidationError(
                {"required_approvals": [f"Only {len(people)} approvers are listed."]}
            )
        return attrs


class TimeWindowRules(StrictSerializer):
    allowed_days = _list(serializers.ChoiceField(choices=DAYS), default=list(DAYS), min_length=1)
    allowed_hours = _list(
        StrictIntegerField(min_value=0, max_value=23), default=lambda: list(range(24)), min_length=1
    )
    timezone = TimeZoneField()
    blackout_dates = _list(StrictCharField(max_length=10), default=list)
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


class DestinationRules(StrictSerializer):
    """Allow and deny lists; an empty allow list allows all but what is denied."""

    allowed_destinations = _list(serializers.ChoiceField(choices=DESTINATIONS), default=list)
    denied_destinations = _list(serializers.ChoiceField(choices=DESTINATIONS), default=list)
    allowed_domains = _list(StrictCharField(max_length=253), default=list)
    denied_domains = _list(StrictCharField(max_length=253), default=list)
    allowed_channels = _list(StrictCharField(max_length=100), default=list)
    denied_channels = _list(StrictCharField(max_length=100), default=list)
    # full addresses, or "@domain" for a whole domain
    allowed_recipients = _list(StrictCharField(max_length=254), default=list)
    denied_recipients = _list(StrictCharField(max_length=254), default=list)

    def validate_allowed_destinations(self, value: list[str]) -> list[str]:
        return [kind for kind in DESTINATIONS if kind in value]

    validate_denied_destinations = validate_allowed_destinations


class CostBudgetRules(StrictSerializer):
    max_cost_usd = StrictFloatField(min_value=0.000001, max_value=10_000_000)
    period = serializers.ChoiceField(choices=["day", "month"], default="day")
    action = serializers.ChoiceField(
        choices=["block", "require_approval", "alert"], default="block"
    )
    timezone = TimeZoneField()


class ConcurrencyRules(StrictSerializer):
    max_running = StrictIntegerField(min_value=1, max_value=100_000)
    action_on_violation = serializers.ChoiceField(choices=["queue", "reject"], default="queue")


class RouteSerializer(StrictSerializer):
    provider = serializers.ChoiceField(choices=LLM_PROVIDERS)
    model = StrictCharField(max_length=100)
    max_tokens = StrictIntegerField(
        min_value=1, max_value=200_000, required=False, allow_null=True, default=None
    )


class RoutesSerializer(StrictSerializer):
    simple = RouteSerializer(required=False)
    medium = RouteSerializer(required=False)
    complex = RouteSerializer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise ValidationError("Give a route for at least one of simple, medium, complex.")
        return attrs


class ThresholdsSerializer(StrictSerializer):
    simple_max_tokens = StrictIntegerField(min_value=1, max_value=10_000_000, default=500)
    medium_max_tokens = StrictIntegerField(min_value=1, max_value=10_000_000, default=2000)


class ModelRoutingRules(StrictSerializer):
    route_by_complexity = RoutesSerializer()
    complexity_detector = serializers.ChoiceField(
        choices=["token_estimate", "hint"], default="token_estimate"
    )
    thresholds = ThresholdsSerializer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        thresholds = attrs.get("thresholds") or ThresholdsSerializer().run_validation({})
        if thresholds["simple_max_tokens"] >= thresholds["medium_max_tokens"]:
            raise ValidationError(
                {"thresholds": ["simple_max_tokens must be below medium_max_tokens."]}
            )
        return {**attrs, "thresholds": dict(thresholds)}


class PatternSerializer(StrictSerializer):
    name = StrictCharField(max_length=100)
    pattern = StrictCharField(max_length=500)
    action = serializers.ChoiceField(choices=["block", "redact", "flag"], default="block")

    def validate_pattern(self, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValidationError(f"Not a regular expression: {exc}") from None
        return value


class ContentSafetyRules(StrictSerializer):
    pii = serializers.ChoiceField(choices=["block", "redact", "off"], default="block")
    prompt_injection = serializers.ChoiceField(choices=["block", "flag", "off"], default="block")
    custom_patterns = PatternSerializer(many=True, required=False, default=list)
    check = _list(
        serializers.ChoiceField(choices=["input", "tool_payload"]),
        default=lambda: ["input", "tool_payload"],
        min_length=1,
    )


RULES: dict[str, type[StrictSerializer]] = {
    "rate_limit": RateLimitRules,
    "approval_required": ApprovalRules,
    "time_window": TimeWindowRules,
    "destination": DestinationRules,
    "cost_budget": CostBudgetRules,
    "concurrency": ConcurrencyRules,
    "model_routing": ModelRoutingRules,
    "content_safety": ContentSafetyRules,
}


def _plain(value: Any) -> Any:
    """Serializer output (OrderedDicts, nested) as plain JSON types."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def validated_rules(policy_type: str, rules: Any) -> dict[str, Any]:
    """The stored form of ``rules`` for ``policy_type``; ``ValidationError`` with field paths
    under ``rules`` otherwise."""
    serializer_class = RULES.get(policy_type)
    if serializer_class is None:
        raise ValidationError({"policy_type": [f"Unknown policy type {policy_type!r}."]})
    serializer = serializer_class(data=rules)
    if not serializer.is_valid():
        raise ValidationError({"rules": serializer.errors})
    return _plain(serializer.validated_data)
