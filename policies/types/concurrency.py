"""Concurrency: at most ``max_running`` runs of an agent in flight at once; beyond it a run
is refused or waits for a slot (looked at again every ``QUEUE_RETRY``, and as soon as a run
of the agent ends). A run holds its slot, in Redis (``counters.concurrency_acquire``), until
it ends."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import cast

from django import forms
from django.utils import timezone
from rest_framework import serializers

from controlplane.serializers import StrictIntegerField, StrictSerializer
from policies import counters
from policies.types.base import (
    QUEUE_RETRY,
    Compiled,
    Evaluation,
    PolicyType,
    Reservation,
    StillGoing,
    Verdict,
)
from policies.types.fields import RulesForm, rule_choice


class ConcurrencyRules(StrictSerializer):
    max_running = StrictIntegerField(min_value=1, max_value=100_000)
    action_on_violation = serializers.ChoiceField(choices=["queue", "reject"], default="queue")


class ConcurrencyForm(RulesForm):
    policy_type = "concurrency"
    rules_class = ConcurrencyRules
    max_running = forms.IntegerField(required=False, label="Max running at once")
    action_on_violation = rule_choice(
        ConcurrencyRules, "action_on_violation", label="When all slots are busy"
    )


def evaluate(evaluation: Evaluation, policy: Compiled[None]) -> Verdict:
    """Take a slot for the run (reserved until it ends), or refuse it or let it wait."""
    if evaluation.context.kind != "trigger":
        return Verdict("not_applicable", "concurrency counts runs")
    rules = policy.rules
    key = evaluation.key(policy, "running")
    admitted, count = counters.concurrency_acquire(
        key, limit=rules["max_running"], member=evaluation.member, dry=evaluation.dry
    )
    if admitted:
        return Verdict(
            "pass",
            f"{count} of {rules['max_running']} running",
            reservation=None
            if evaluation.dry
            else {"kind": "concurrency", "key": key, "member": evaluation.member},
        )
    reason = f"{rules['max_running']} runs of this agent already in flight"
    if rules["action_on_violation"] == "queue":
        return Verdict(
            "delay", f"{reason}; waiting for a slot", delay_until=timezone.now() + QUEUE_RETRY
        )
    return Verdict("deny", reason)


def release(reservation: Reservation, actual_cost_usd: Decimal | None) -> bool:
    """The run's slot is freed: a run waiting for one may take it."""
    counters.concurrency_release(reservation["key"], reservation["member"])
    return True


def undo(reservation: Reservation) -> None:
    """A run that will not happen gives its slot back."""
    counters.concurrency_release(reservation["key"], reservation["member"])


def reconcile(still_going: StillGoing, grace_seconds: int) -> int:
    """Slots held by runs that ended (a worker that died before giving its slot back) are
    freed; returns how many. Slots younger than ``grace_seconds`` are left alone: their
    trigger may not have committed its run yet."""
    client = counters.client()
    freed = 0
    for key in client.smembers(counters.CONCURRENCY_KEYS):
        if not client.exists(key):
            client.srem(counters.CONCURRENCY_KEYS, key)
            continue
        # The client does not decode responses: the members are bytes.
        members = cast(
            "list[bytes]", client.zrangebyscore(key, "-inf", time.time() - grace_seconds)
        )
        old = [m.decode() for m in members]
        if not old:
            continue
        alive = still_going(old)
        for member in set(old) - alive:
            freed += client.zrem(key, member)
    return freed


POLICY_TYPE = PolicyType(
    name="concurrency",
    rules=ConcurrencyRules,
    form=ConcurrencyForm,
    evaluate=evaluate,
    holds_agent=True,
    reservation="concurrency",
    release=release,
    undo=undo,
    reconcile=reconcile,
)
