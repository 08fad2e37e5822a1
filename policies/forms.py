"""The console's policy forms: the common fields, one form of fields per policy type (its
rules, without writing JSON), and the dry run.

A rules form only turns what was typed into the API's ``rules`` object; whether that is
valid is decided once, by ``policies.rules.validated_rules``, whose errors (with their
paths: ``rules.allowed_hours[0]``) are put back on the fields they name.
"""

from __future__ import annotations

import re
import zoneinfo
from functools import cache
from typing import Any, ClassVar

from django import forms
from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.fields import empty

from agents.config import validate_tag
from agents.models import Agent
from controlplane.errors import flatten_errors
from controlplane.forms import parse_json
from integrations.catalog import DESTINATIONS, LLM_PROVIDERS
from policies.models import Policy
from policies.rules import (
    APPROVABLE_ACTIONS,
    COMPLEXITIES,
    DAYS,
    RULES,
    validated_rules,
)


@cache
def timezones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


def _choices(policy_type: str, name: str) -> list[tuple[str, str]]:
    """A rules field's choices, read from its serializer (one definition)."""
    field = RULES[policy_type]().fields[name]
    choices = getattr(field, "child", field).choices
    return [(value, str(label)) for value, label in choices.items()]


def tag_names(text: str) -> list[str]:
    """Tag names from "a, b c" (commas or spaces), each checked as the API checks it."""
    names = [name for name in re.split(r"[\s,]+", text.strip()) if name]
    for name in names:
        try:
            validate_tag(name)
        except ValidationError as exc:
            raise forms.ValidationError(f"{name!r}: {exc.detail[0]}") from None
    return list(dict.fromkeys(names))


def _rule_choice(policy_type: str, name: str, **kwargs: Any) -> forms.ChoiceField:
    """A select for one of a type's choice rules, its choices and default read from the
    rules serializer; left empty, the rule's default applies."""
    default = RULES[policy_type]().fields[name].default
    return forms.ChoiceField(
        choices=_choices(policy_type, name),
        required=False,
        initial=None if default is empty else default,
        **kwargs,
    )


def _pairs(values: Any) -> list[tuple[str, str]]:
    return [(value, value) for value in values]


class LinesField(forms.Field):
    """A list of strings typed one per line (blank lines ignored)."""

    widget = forms.Textarea(attrs={"rows": 3})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list):
            return value
        return [line.strip() for line in (value or "").splitlines() if line.strip()]

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value


class PatternsField(LinesField):
    """Content-safety patterns, one ``name: regex`` or ``name: regex: action`` per line."""

    ACTIONS = ("block", "redact", "flag")

    def to_python(self, value: Any) -> list[dict[str, str]]:
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            return value
        patterns = []
        for number, line in enumerate(super().to_python(value), start=1):
            name, colon, rest = line.partition(":")
            if not colon or not name.strip() or not rest.strip():
                raise forms.ValidationError(
                    f"Line {number}: write name: regex (or name: regex: action)."
                )
            pattern, action = rest.strip(), None
            head, colon, tail = pattern.rpartition(":")
            if colon and tail.strip() in self.ACTIONS and head.strip():
                pattern, action = head.strip(), tail.strip()
            item = {"name": name.strip(), "pattern": pattern}
            if action:
                item["action"] = action
            patterns.append(item)
        return patterns

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return "\n".join(
                f"{item['name']}: {item['pattern']}: {item.get('action', 'block')}"
                for item in value
            )
        return value


def _checkboxes(choices: list[tuple[Any, str]], **kwargs: Any) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=choices, widget=forms.CheckboxSelectMultiple, required=False, **kwargs
    )


# --- the common fields ----------------------------------------------------------------------


class PolicyForm(forms.Form):
    policy_name = forms.CharField(max_length=255)
    policy_type = forms.ChoiceField(choices=Policy.Type.choices, label="Type")
    applies_to = forms.ChoiceField(
        choices=Policy.Scope.choices,
        initial=Policy.Scope.ALL,
        label="Applies to",
        help_text="All agents, one agent, or the agents with a tag.",
    )
    target_agent = forms.ModelChoiceField(
        queryset=Agent.objects.none(),
        to_field_name="name",
        required=False,
        label="Agent",
        help_text="For a policy that applies to one agent.",
    )
    target_tags = forms.CharField(
        required=False,
        label="Tags",
        help_text="For a policy that applies to a tag: tag names, comma-separated.",
    )
    enabled = forms.BooleanField(required=False, initial=True)
    priority = forms.IntegerField(
        min_value=0, max_value=1_000_000, initial=100, help_text="Lower is looked at first."
    )

    def __init__(self, *args: Any, agents: QuerySet[Agent], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["target_agent"].queryset = agents

    @staticmethod
    def initial_for(policy: Policy) -> dict[str, Any]:
        return {
            "policy_name": policy.policy_name,
            "policy_type": policy.policy_type,
            "applies_to": policy.applies_to,
            "target_agent": policy.target_agent.name if policy.target_agent else None,
            "target_tags": ", ".join(tag.name for tag in policy.target_tags.all()),
            "enabled": policy.enabled,
            "priority": policy.priority,
        }

    def clean_target_tags(self) -> list[str]:
        return tag_names(self.cleaned_data["target_tags"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # A missing target is a field error, before any question of who may write it.
        if (
            cleaned.get("applies_to") == Policy.Scope.AGENT
            and not cleaned.get("target_agent")
            and "target_agent" not in self.errors
        ):
            self.add_error("target_agent", "A policy for one agent names it.")
        return cleaned

    def service_data(self) -> dict[str, Any]:
        """The fields as ``policies.services`` take them (without the rules)."""
        return dict(self.cleaned_data)


# --- one form per policy type ---------------------------------------------------------------


class RulesForm(forms.Form):
    """The fields of one type's rules. ``rules`` is the validated stored form once
    ``is_valid()``; ``add_rule_errors`` puts a ``validated_rules`` error on its field."""

    policy_type: ClassVar[str]
    prefix = "rules"

    def __init__(self, *args: Any, rules: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if rules is not None:
            kwargs["initial"] = self.initial_from(rules)
        super().__init__(*args, **kwargs)
        self.rules: dict[str, Any] = {}

    @property
    def label(self) -> str:
        return Policy.Type(self.policy_type).label

    @property
    def has_timezone(self) -> bool:
        return "timezone" in self.fields

    @property
    def timezones(self) -> list[str]:
        return timezones()

    def initial_from(self, rules: dict[str, Any]) -> dict[str, Any]:
        return dict(rules)

    def to_rules(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        """The rules object from the cleaned fields; an empty field leaves its key out (so
        the default applies, or a missing required value is reported)."""
        return {name: value for name, value in cleaned.items() if value not in (None, "")}

    def field_for(self, path: list[str]) -> str | None:
        """The form field an error at ``rules.<path>`` belongs on (None: the whole form)."""
        return path[0] if path and path[0] in self.fields else None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors:
            try:
                self.rules = validated_rules(self.policy_type, self.to_rules(cleaned))
            except ValidationError as exc:
                self.add_rule_errors(exc)
        return cleaned

    def add_rule_errors(self, exc: ValidationError) -> None:
        for item in flatten_errors(exc.detail):
            where = item["field"]
            path = re.findall(r"[A-Za-z_]\w*", where.removeprefix("rules"))
            self.add_error(self.field_for(path), f"{where}: {item['message']}")


class RateLimitForm(RulesForm):
    policy_type = "rate_limit"
    max_executions = forms.IntegerField(required=False, label="Max executions")
    window_minutes = forms.IntegerField(required=False, label="Window (minutes)")
    action_on_violation = _rule_choice(
        "rate_limit",
        "action_on_violation",
        label="When the limit is reached",
        help_text="reject: the run is refused (rate_limited); queue: it waits for the window.",
    )


class TimeWindowForm(RulesForm):
    policy_type = "time_window"
    allowed_days = _checkboxes(_pairs(DAYS), label="Allowed days", initial=list(DAYS))
    allowed_hours = forms.TypedMultipleChoiceField(
        choices=[(hour, f"{hour:02d}") for hour in range(24)],
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        initial=list(range(24)),
        label="Allowed hours",
        help_text="The hours (local time) a run may start in: 09 means 09:00 to 09:59.",
    )
    timezone = forms.CharField(
        max_length=64,
        required=False,
        initial="UTC",
        widget=forms.TextInput(attrs={"list": "timezones", "autocomplete": "off"}),
        help_text="An IANA time zone, e.g. America/New_York.",
    )
    blackout_dates = LinesField(label="Blackout dates", help_text="YYYY-MM-DD, one per line.")
    action_on_violation = _rule_choice(
        "time_window",
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


class ApprovalForm(RulesForm):
    policy_type = "approval_required"
    require_approval_for = _checkboxes(
        _pairs(APPROVABLE_ACTIONS),
        label="Require approval for",
        help_text="execute: every run; a tool action: every call of that tool.",
    )
    approvers = LinesField(help_text="E-mail addresses, or group:NAME, one per line.")
    required_approvals = forms.IntegerField(required=False, initial=1, label="Approvals needed")
    auto_expire_hours = forms.FloatField(required=False, initial=24, label="Expires after (hours)")
    risk_threshold = _rule_choice("approval_required", "risk_threshold", label="Risk")
    on_expire = _rule_choice(
        "approval_required",
        "on_expire",
    )
    on_reject = _rule_choice(
        "approval_required",
        "on_reject",
    )
    allow_self_approval = forms.BooleanField(required=False, label="Allow self-approval")
    warn_before_minutes = forms.IntegerField(
        required=False, label="Warn before expiry (minutes)", help_text="Optional."
    )

    def to_rules(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        rules = super().to_rules(cleaned)
        rules["require_approval_for"] = cleaned.get("require_approval_for", [])
        return rules


class DestinationForm(RulesForm):
    policy_type = "destination"
    allowed_destinations = _checkboxes(
        _pairs(DESTINATIONS),
        label="Allowed destinations",
        help_text="None ticked: every kind not denied.",
    )
    denied_destinations = _checkboxes(_pairs(DESTINATIONS), label="Denied destinations")
    allowed_domains = LinesField(help_text="One per line; empty: any domain not denied.")
    denied_domains = LinesField()
    allowed_channels = LinesField(help_text="Slack channels, one per line.")
    denied_channels = LinesField()
    allowed_recipients = LinesField(help_text="Addresses, or @domain for a whole domain.")
    denied_recipients = LinesField()


class CostBudgetForm(RulesForm):
    policy_type = "cost_budget"
    max_cost_usd = forms.FloatField(required=False, label="Budget (USD)")
    period = _rule_choice(
        "cost_budget",
        "period",
    )
    action = _rule_choice(
        "cost_budget",
        "action",
        label="When exceeded",
        help_text="block the run, ask for an approval, or only alert.",
    )
    timezone = forms.CharField(
        max_length=64,
        required=False,
        initial="UTC",
        widget=forms.TextInput(attrs={"list": "timezones", "autocomplete": "off"}),
        help_text="Where the day or month starts.",
    )


class ConcurrencyForm(RulesForm):
    policy_type = "concurrency"
    max_running = forms.IntegerField(required=False, label="Max running at once")
    action_on_violation = _rule_choice(
        "concurrency", "action_on_violation", label="When all slots are busy"
    )


class ModelRoutingForm(RulesForm):
    """A route (provider, model, max tokens) per complexity, and where the complexity comes
    from; the token thresholds between simple, medium and complex."""

    policy_type = "model_routing"
    ROUTE_KEYS = ("provider", "model", "max_tokens")
    THRESHOLDS = {"simple_max_tokens": "simple_up_to", "medium_max_tokens": "medium_up_to"}

    complexity_detector = _rule_choice(
        "model_routing",
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
                choices=[("", "(no route)"), *_pairs(LLM_PROVIDERS)],
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


class ContentSafetyForm(RulesForm):
    policy_type = "content_safety"
    pii = _rule_choice(
        "content_safety",
        "pii",
        label="Personal data (PII)",
        help_text="e-mail addresses, phone numbers, card numbers, …",
    )
    prompt_injection = _rule_choice("content_safety", "prompt_injection", label="Prompt injection")
    custom_patterns = PatternsField(
        label="Custom patterns",
        help_text="One per line: name: regex, or name: regex: action (block, redact, flag).",
    )
    check = _checkboxes(
        _choices("content_safety", "check"),
        label="Check",
        initial=["input", "tool_payload"],
        help_text="input: a run's input; tool_payload: the arguments of every tool call.",
    )

    def to_rules(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        rules = super().to_rules(cleaned)
        rules["check"] = cleaned.get("check", [])
        rules["custom_patterns"] = cleaned.get("custom_patterns", [])
        return rules


RULES_FORMS: dict[str, type[RulesForm]] = {
    form.policy_type: form
    for form in (
        RateLimitForm,
        TimeWindowForm,
        ApprovalForm,
        DestinationForm,
        CostBudgetForm,
        ConcurrencyForm,
        ModelRoutingForm,
        ContentSafetyForm,
    )
}


def rules_form_for(policy_type: str | None) -> type[RulesForm]:
    return RULES_FORMS.get(policy_type or "", RateLimitForm)


# --- the dry run ----------------------------------------------------------------------------


class DryRunForm(forms.Form):
    agent = forms.ModelChoiceField(queryset=Agent.objects.none(), to_field_name="name")
    input = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "class": "code", "spellcheck": "false"}),
        help_text="The run's input (or the tool's arguments) as JSON; empty: {}.",
    )
    at = forms.DateTimeField(
        required=False,
        label="At (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Empty: now.",
    )
    action = forms.ChoiceField(
        choices=_pairs(APPROVABLE_ACTIONS),
        required=False,
        initial="execute",
        help_text="execute: a run of the production version; a tool action: a call of it.",
    )
    destination = forms.ChoiceField(
        choices=[("", "—"), *_pairs(DESTINATIONS)],
        required=False,
        help_text="At a tool call: where it sends to.",
    )
    target = forms.CharField(
        max_length=2000, required=False, help_text="At a tool call: channel, recipient or URL."
    )
    complexity = forms.ChoiceField(
        choices=[("", "—"), *_pairs(COMPLEXITIES)],
        required=False,
        help_text="A complexity hint for model routing.",
    )

    def __init__(self, *args: Any, agents: QuerySet[Agent], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = agents

    def clean_action(self) -> str:
        return self.cleaned_data["action"] or "execute"

    def clean_input(self) -> Any:
        text = self.cleaned_data["input"].strip()
        return parse_json(text) if text else {}
