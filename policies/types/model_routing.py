"""Model routing: a run's model chosen by its complexity (simple, medium, complex) — from
the trigger's hint, or estimated from the input's size against the token thresholds. A
route does not stop the run; the first routing policy in order that routes wins."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from controlplane.serializers import StrictCharField, StrictIntegerField, StrictSerializer
from integrations.catalog import LLM_PROVIDERS
from policies.types.base import COMPLEXITIES, Compiled, Evaluation, PolicyType, Verdict
from policies.types.fields import RulesForm, pairs, rule_choice


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


class ModelRoutingForm(RulesForm):
    """A route (provider, model, max tokens) per complexity, and where the complexity comes
    from; the token thresholds between simple, medium and complex."""

    policy_type = "model_routing"
    rules_class = ModelRoutingRules
    ROUTE_KEYS = ("provider", "model", "max_tokens")
    THRESHOLDS = {"simple_max_tokens": "simple_up_to", "medium_max_tokens": "medium_up_to"}

    complexity_detector = rule_choice(
        ModelRoutingRules,
        "complexity_detector",
        label="Complexity from",
        help_text="token_estimate: the input's size; hint: the trigger's complexity hint.",
    )
    simple_up_to = forms.IntegerField(
        required=False, initial=500, label="Simple: inputs up to (tokens)"
    )
    medium_up_to = forms.IntegerField(
        required=False, initial=2000, label="Medium: inputs up to (tokens)"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for level in COMPLEXITIES:
            self.fields[f"{level}_provider"] = forms.ChoiceField(
                choices=[("", "(no route)"), *pairs(LLM_PROVIDERS)],
                required=False,
                label=f"{level.capitalize()}: provider",
            )
            self.fields[f"{level}_model"] = forms.CharField(
                max_length=100, required=False, label=f"{level.capitalize()}: model"
            )
            self.fields[f"{level}_max_tokens"] = forms.IntegerField(
                required=False, label=f"{level.capitalize()}: max tokens"
            )
        self.order_fields([f"{level}_{key}" for level in COMPLEXITIES for key in self.ROUTE_KEYS])

    def initial_from(self, rules: dict[str, Any]) -> dict[str, Any]:
        initial = {"complexity_detector": rules.get("complexity_detector")}
        for key, value in (rules.get("thresholds") or {}).items():
            initial[self.THRESHOLDS.get(key, key)] = value
        for level, route in (rules.get("route_by_complexity") or {}).items():
            for key, value in route.items():
                initial[f"{level}_{key}"] = value
        return initial

    def to_rules(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        routes = {}
        for level in COMPLEXITIES:
            route = {
                key: cleaned[f"{level}_{key}"]
                for key in self.ROUTE_KEYS
                if cleaned.get(f"{level}_{key}") not in (None, "")
            }
            if route:
                routes[level] = route
        rules: dict[str, Any] = {
            "route_by_complexity": routes,
            "complexity_detector": cleaned["complexity_detector"],
        }
        thresholds = {
            key: cleaned[field]
            for key, field in self.THRESHOLDS.items()
            if cleaned.get(field) is not None
        }
        if thresholds:
            rules["thresholds"] = thresholds
        return rules

    def field_for(self, path: list[str]) -> str | None:
        if path[:1] == ["route_by_complexity"]:
            if len(path) >= 3:
                return f"{path[1]}_{path[2]}"
            return f"{path[1]}_provider" if len(path) == 2 else "simple_provider"
        if path[:1] == ["thresholds"]:
            return self.THRESHOLDS.get(path[1], "simple_up_to") if len(path) > 1 else "simple_up_to"
        return super().field_for(path)


def evaluate(evaluation: Evaluation, policy: Compiled[None]) -> Verdict:
    """Route the run to its complexity's model (no route for it: the version's stays)."""
    context = evaluation.context
    if context.kind != "trigger":
        return Verdict("not_applicable", "routing chooses a run's model")
    rules = policy.rules
    complexity, how = _complexity(context.complexity_hint, context.payload, rules)
    route = rules["route_by_complexity"].get(complexity)
    if route is None:
        return Verdict("pass", f"{complexity} ({how}): no route for it, the version's model stays")
    return Verdict(
        "route",
        f"{complexity} ({how}) → {route['provider']} {route['model']}",
        route={key: value for key, value in route.items() if value is not None},
    )


def _complexity(hint: str | None, payload: Any, rules: dict[str, Any]) -> tuple[str, str]:
    """The run's complexity, and how it was told."""
    if hint in COMPLEXITIES:
        return hint, "hint"
    if rules["complexity_detector"] == "hint":
        return "medium", "no hint given"
    tokens = len(json.dumps(payload, default=str)) // 4
    thresholds = rules["thresholds"]
    if tokens <= thresholds["simple_max_tokens"]:
        return "simple", f"~{tokens} tokens"
    if tokens <= thresholds["medium_max_tokens"]:
        return "medium", f"~{tokens} tokens"
    return "complex", f"~{tokens} tokens"


POLICY_TYPE = PolicyType(
    name="model_routing",
    rules=ModelRoutingRules,
    form=ModelRoutingForm,
    evaluate=evaluate,
)
