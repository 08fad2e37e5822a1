"""The policy types' registry: every stored type has its module, a lookup of an unknown
name is a clear error, and what used to be special cases elsewhere is declared by the
types."""

from __future__ import annotations

from typing import Any

import pytest

from policies import types
from policies.models import Policy
from policies.rules import validated_rules
from policies.types.base import Compiled


def test_every_policy_type_choice_has_its_module_and_no_module_lacks_a_choice() -> None:
    assert [kind.name for kind in types.all_types()] == sorted(Policy.Type.values)
    for kind in types.all_types():
        assert types.policy_type(kind.name) is kind
        assert kind.form.policy_type == kind.name and kind.form.rules_class is kind.rules


def test_an_unknown_type_is_a_clear_error() -> None:
    with pytest.raises(types.UnknownPolicyType, match="Unknown policy type 'nope'"):
        types.policy_type("nope")
    with pytest.raises(types.UnknownPolicyType, match="'parking'"):
        types.reservation_maker("parking")


def test_special_outcomes_are_declared_by_their_types() -> None:
    declared = {
        kind.name: (
            kind.reads_redacted,
            kind.names_approvers,
            kind.holds_agent,
            kind.risk_floor,
            kind.reservation,
        )
        for kind in types.all_types()
    }
    assert declared == {
        "approval_required": (False, True, False, "low", None),
        "concurrency": (False, False, True, "low", "concurrency"),
        "content_safety": (True, False, False, "low", None),
        "cost_budget": (False, False, False, "high", "budget"),
        "destination": (False, False, False, "low", None),
        "model_routing": (False, False, False, "low", None),
        "rate_limit": (False, False, False, "low", "rate"),
        "time_window": (False, False, False, "low", None),
    }
    assert types.risk_floor(None) == "low"


def test_a_type_compiles_ahead_what_its_decisions_need() -> None:
    def compiled(policy_type: str, rules: dict[str, Any]) -> Compiled[Any]:
        row = {"id": "p", "policy_name": "p", "policy_type": policy_type, "priority": 1}
        return types.policy_type(policy_type).compile(
            {**row, "rules": validated_rules(policy_type, rules)}
        )

    window = compiled("time_window", {"timezone": "Asia/Tokyo"})
    assert str(window.ahead) == "Asia/Tokyo"
    safety = compiled("content_safety", {"custom_patterns": [{"name": "k", "pattern": "sk-"}]})
    assert [(name, regex.pattern, action) for name, regex, action in safety.ahead] == [
        ("k", "sk-", "block")
    ]
    assert compiled("concurrency", {"max_running": 1}).ahead is None
