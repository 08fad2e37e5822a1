"""The console's policy forms: the common fields, the dry run, and — from each type's
module in ``policies.types`` — the form of a type's rules (``rules_form_for``).

A rules form only turns what was typed into the API's ``rules`` object; whether that is
valid is decided once, by the type's rules serializer, whose errors (with their paths:
``rules.allowed_hours[0]``) are put back on the fields they name
(``policies.types.fields.RulesForm``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError

from agents.config import validate_tag
from agents.models import Agent
from controlplane.forms import parse_json
from integrations.catalog import DESTINATIONS
from policies import types as policy_types
from policies.models import Policy
from policies.types.base import APPROVABLE_ACTIONS, COMPLEXITIES
from policies.types.fields import RulesForm, pairs
from policies.types.fields import timezones as timezones  # the console's zone suggestions

if TYPE_CHECKING:
    from rest_framework.exceptions import ErrorDetail


def tag_names(text: str) -> list[str]:
    """Tag names from "a, b c" (commas or spaces), each checked as the API checks it."""
    names = [name for name in re.split(r"[\s,]+", text.strip()) if name]
    for name in names:
        try:
            validate_tag(name)
        except ValidationError as exc:
            # Raised with one message: its detail is a list of one.
            message = cast("list[ErrorDetail]", exc.detail)[0]
            raise forms.ValidationError(f"{name!r}: {message}") from None
    return list(dict.fromkeys(names))


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
        cast("forms.ModelChoiceField[Agent]", self.fields["target_agent"]).queryset = agents

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
        cleaned = cast(dict[str, Any], super().clean())  # a Form's clean: its cleaned_data
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


# --- the rules of a type ---------------------------------------------------------------------


def rules_form_for(policy_type: str | None) -> type[RulesForm]:
    """The form of the type's rules; an unknown or missing type gets the rate limit's (the
    type a new policy starts with)."""
    try:
        return policy_types.policy_type(policy_type or "").form
    except policy_types.UnknownPolicyType:
        return policy_types.policy_type(Policy.Type.RATE_LIMIT).form


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
        choices=pairs(APPROVABLE_ACTIONS),
        required=False,
        initial="execute",
        help_text="execute: a run of the production version; a tool action: a call of it.",
    )
    destination = forms.ChoiceField(
        choices=[("", "—"), *pairs(DESTINATIONS)],
        required=False,
        help_text="At a tool call: where it sends to.",
    )
    target = forms.CharField(
        max_length=2000, required=False, help_text="At a tool call: channel, recipient or URL."
    )
    complexity = forms.ChoiceField(
        choices=[("", "—"), *pairs(COMPLEXITIES)],
        required=False,
        help_text="A complexity hint for model routing.",
    )

    def __init__(self, *args: Any, agents: QuerySet[Agent], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast("forms.ModelChoiceField[Agent]", self.fields["agent"]).queryset = agents

    def clean_action(self) -> str:
        return self.cleaned_data["action"] or "execute"

    def clean_input(self) -> Any:
        text = self.cleaned_data["input"].strip()
        return parse_json(text) if text else {}
