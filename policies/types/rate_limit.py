"""Rate limit: at most ``max_executions`` runs of an agent in a sliding window of
``window_minutes``; beyond it a run is refused (rate_limited) or queued until the window
frees. Counted at trigger time, in Redis (``counters.rate_acquire``)."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.utils import timezone
from rest_framework import serializers

from controlplane.serializers import StrictIntegerField, StrictSerializer
from policies import counters
from policies.types.base import Compiled, Evaluation, PolicyType, Reservation, Verdict
from policies.types.fields import RulesForm, rule_choice


class RateLimitRules(StrictSerializer):
    max_executions = StrictIntegerField(min_value=1, max_value=10_000_000)
    window_minutes = StrictIntegerField(min_value=1, max_value=43_200)  # up to 30 days
    action_on_violation = serializers.ChoiceField(choices=["reject", "queue"], default="reject")


class RateLimitForm(RulesForm):
    policy_type = "rate_limit"
    rules_class = RateLimitRules
    max_executions = forms.IntegerField(required=False, label="Max executions")
    window_minutes = forms.IntegerField(required=False, label="Window (minutes)")
    action_on_violation = rule_choice(
        RateLimitRules,
        "action_on_violation",
        label="When the limit is reached",
        help_text="reject: the run is refused (rate_limited); queue: it waits for the window.",
    )


def evaluate(evaluation: Evaluation, policy: Compiled[None]) -> Verdict:
    """Admit the run into the window (reserving its entry), or refuse or queue it."""
    if evaluation.context.kind != "trigger":
        return Verdict("not_applicable", "rate limits count runs")
    rules = policy.rules
    key = evaluation.key(policy, "rate")
    check = counters.rate_acquire(
        key,
        limit=rules["max_executions"],
        window_ms=rules["window_minutes"] * 60_000,
        member=evaluation.member,
        dry=evaluation.dry,
    )
    if check.admitted:
        return Verdict(
            "pass",
            f"{check.count} of {rules['max_executions']} in {rules['window_minutes']} min",
            reservation=None
            if evaluation.dry
            else {"kind": "rate", "key": key, "member": evaluation.member},
        )
    reason = f"{rules['max_executions']} runs per {rules['window_minutes']} min reached"
    if rules["action_on_violation"] == "queue":
        until = timezone.now() + timedelta(milliseconds=check.free_in_ms)
        return Verdict("delay", f"{reason}; queued until the window frees", delay_until=until)
    return Verdict("rate_limited", reason)


def undo(reservation: Reservation) -> None:
    """A run that will not happen leaves the window."""
    counters.rate_release(reservation["key"], reservation["member"])


POLICY_TYPE = PolicyType(
    name="rate_limit",
    rules=RateLimitRules,
    form=RateLimitForm,
    evaluate=evaluate,
    reservation="rate",  # a run that ended keeps its entry in the window (it ran)
    undo=undo,
)
