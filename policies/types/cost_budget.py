"""Cost budget: at most ``max_cost_usd`` per day or month (in ``timezone``) for the
policy's agents together. A run reserves its estimated cost when admitted and settles its
actual cost when it ends (``counters.budget_reserve`` / ``budget_settle``); a tool call is
checked against what is spent and reserved. Over the budget: block, ask for approval (a
high-risk request), or only alert."""

from __future__ import annotations

import json
import zoneinfo
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms
from rest_framework import serializers

from controlplane.serializers import StrictFloatField, StrictSerializer, TimeZoneField
from policies import counters
from policies.types.base import Compiled, Evaluation, PolicyType, Reservation, Verdict, zone_of
from policies.types.fields import RulesForm, rule_choice, zone_field

if TYPE_CHECKING:
    from agents.models import AgentVersion

MICRO = Decimal(1_000_000)


class CostBudgetRules(StrictSerializer):
    max_cost_usd = StrictFloatField(min_value=0.000001, max_value=10_000_000)
    period = serializers.ChoiceField(choices=["day", "month"], default="day")
    action = serializers.ChoiceField(
        choices=["block", "require_approval", "alert"], default="block"
    )
    timezone = TimeZoneField()


class CostBudgetForm(RulesForm):
    policy_type = "cost_budget"
    rules_class = CostBudgetRules
    max_cost_usd = forms.FloatField(required=False, label="Budget (USD)")
    period = rule_choice(CostBudgetRules, "period")
    action = rule_choice(
        CostBudgetRules,
        "action",
        label="When exceeded",
        help_text="block the run, ask for an approval, or only alert.",
    )
    timezone = zone_field("Where the day or month starts.")


def evaluate(evaluation: Evaluation, policy: Compiled[zoneinfo.ZoneInfo | None]) -> Verdict:
    """Reserve the run's estimate within the period's budget (a tool call: check what is
    left); over it, what the rules say."""
    context = evaluation.context
    rules = policy.rules
    period, ttl = _budget_period(evaluation.at, rules["period"], policy.ahead)
    key = f"{counters.PREFIX}:{policy.id}:budget:{period}"
    limit = int(Decimal(str(rules["max_cost_usd"])) * MICRO)
    estimate = context.estimated_cost_usd
    if estimate is None and context.kind == "trigger":
        estimate = _run_estimate(evaluation.version, context.payload)
    estimate_micro = int((estimate or Decimal(0)) * MICRO)
    member = evaluation.member
    if context.kind == "trigger":
        admitted, reserved, spent = counters.budget_reserve(
            key,
            limit_micro=limit,
            estimate_micro=estimate_micro,
            member=member,
            ttl=ttl,
            dry=evaluation.dry,
        )
    else:
        reserved, spent = counters.budget_state(key)
        admitted = reserved + spent + estimate_micro <= limit
    state = (
        f"${(reserved + spent) / 1_000_000:.4f} of ${rules['max_cost_usd']} this {rules['period']}"
    )
    if admitted:
        reservation = None
        if context.kind == "trigger" and not evaluation.dry:
            reservation = {"kind": "budget", "key": key, "member": member, "ttl": ttl}
        return Verdict("pass", state, reservation=reservation)
    reason = f"budget exceeded: {state}"
    if rules["action"] == "alert":
        return Verdict("alert", reason)
    if rules["action"] == "require_approval":
        if not context.approved:
            return Verdict("require_approval", reason)
        reservation = None
        if context.kind == "trigger" and not evaluation.dry:
            # Over the budget by a person's decision: reserved all the same, so that
            # the run's actual cost is counted when it settles.
            counters.budget_reserve(
                key, limit_micro=2**62, estimate_micro=estimate_micro, member=member, ttl=ttl
            )
            reservation = {"kind": "budget", "key": key, "member": member, "ttl": ttl}
        return Verdict("pass", f"{reason}; approved", reservation=reservation)
    return Verdict("deny", reason)


def _budget_period(at: datetime, period: str, zone: zoneinfo.ZoneInfo | None) -> tuple[str, int]:
    """The period's name (its counter's key) and how long its counter is kept."""
    local = at.astimezone(zone or zoneinfo.ZoneInfo("UTC"))
    if period == "month":
        return local.strftime("%Y-%m"), 33 * 86400
    return local.date().isoformat(), 2 * 86400


def _run_estimate(version: AgentVersion | None, payload: Any) -> Decimal:
    """What a run may cost, reserved at admission: one turn's worst case (the prompt as
    sent, the whole max_tokens answered) at the version's model price; 0 when unpriced."""
    from integrations.llm.pricing import cost_usd

    llm = (version.config.get("llm") if version else None) or {}
    if not llm:
        return Decimal(0)
    prompt = len(llm.get("system_prompt", "")) + len(json.dumps(payload, default=str))
    cost = cost_usd(llm.get("model", ""), prompt // 4 + 1, llm.get("max_tokens", 1024))
    return cost or Decimal(0)


def release(reservation: Reservation, actual_cost_usd: Decimal | None) -> bool:
    """The run's reservation is settled with its actual cost (with the reservation itself
    when the cost is unknown: an unpriced model is not free)."""
    actual = -1 if actual_cost_usd is None else int(actual_cost_usd * MICRO)
    counters.budget_settle(
        reservation["key"],
        member=reservation["member"],
        actual_micro=actual,
        ttl=reservation["ttl"],
    )
    return False


def undo(reservation: Reservation) -> None:
    """A run that will not happen costs nothing."""
    counters.budget_settle(
        reservation["key"], member=reservation["member"], actual_micro=0, ttl=reservation["ttl"]
    )


POLICY_TYPE = PolicyType(
    name="cost_budget",
    rules=CostBudgetRules,
    form=CostBudgetForm,
    evaluate=evaluate,
    prepare=zone_of,
    risk_floor="high",
    reservation="budget",
    release=release,
    undo=undo,
)
