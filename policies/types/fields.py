"""The console's building blocks for a type's rules form: ``RulesForm`` (the base of every
type's form) and the fields several types use.

A rules form only turns what was typed into the API's ``rules`` object; whether that is
valid is decided once, by the type's rules serializer (as ``policies.rules.validated_rules``
does), whose errors (with their paths: ``rules.allowed_hours[0]``) are put back on the
fields they name.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django import forms
from rest_framework.exceptions import ValidationError
from rest_framework.fields import empty

from controlplane.errors import flatten_errors
from controlplane.serializers import StrictSerializer
from policies.models import Policy
from policies.types.stored import validated

if TYPE_CHECKING:
    from rest_framework.serializers import ChoiceField


@cache
def timezones() -> list[str]:
    """Every IANA zone name, for the time zone fields' suggestions (computed once)."""
    return sorted(zoneinfo.available_timezones())


def rule_choices(rules_class: type[StrictSerializer], name: str) -> list[tuple[str, str]]:
    """A rules field's choices, read from its serializer (one definition)."""
    field = rules_class().fields[name]
    # A choice rule, or a list of choices (its child).
    choice = cast("ChoiceField", getattr(field, "child", field))
    choices = choice.choices
    return [(value, str(label)) for value, label in choices.items()]


def rule_choice(rules_class: type[StrictSerializer], name: str, **kwargs: Any) -> forms.ChoiceField:
    """A select for one of a type's choice rules, its choices and default read from the
    rules serializer; left empty, the rule's default applies."""
    default = rules_class().fields[name].default
    return forms.ChoiceField(
        choices=rule_choices(rules_class, name),
        required=False,
        initial=None if default is empty else default,
        **kwargs,
    )


def pairs(values: Iterable[str]) -> list[tuple[str, str]]:
    """Choices whose labels are their values."""
    return [(value, value) for value in values]


def checkboxes(choices: list[tuple[Any, str]], **kwargs: Any) -> forms.MultipleChoiceField:
    """A list rule as ticks (none ticked: an empty list)."""
    return forms.MultipleChoiceField(
        choices=choices, widget=forms.CheckboxSelectMultiple, required=False, **kwargs
    )


def zone_field(help_text: str) -> forms.CharField:
    """A time zone rule, typed with the zone names as suggestions."""
    return forms.CharField(
        max_length=64,
        required=False,
        initial="UTC",
        widget=forms.TextInput(attrs={"list": "timezones", "autocomplete": "off"}),
        help_text=help_text,
    )


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

    # Not lines but patterns (the lines parsed): a list of another item type.
    def to_python(self, value: Any) -> list[dict[str, str]]:  # type: ignore[override]
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


class RulesForm(forms.Form):
    """The fields of one type's rules. ``rules`` is the validated stored form once
    ``is_valid()``; ``add_rule_errors`` puts a ``validated_rules`` error on its field.

    A subclass names its type (``policy_type``) and that type's rules serializer
    (``rules_class``), which validates what the fields make."""

    policy_type: ClassVar[str]
    rules_class: ClassVar[type[StrictSerializer]]
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
        cleaned = cast(dict[str, Any], super().clean())  # a Form's clean: its cleaned_data
        if not self.errors:
            try:
                self.rules = validated(self.rules_class, self.to_rules(cleaned))
            except ValidationError as exc:
                self.add_rule_errors(exc)
        return cleaned

    def add_rule_errors(self, exc: ValidationError) -> None:
        for item in flatten_errors(exc.detail):
            where = item["field"]
            path = re.findall(r"[A-Za-z_]\w*", where.removeprefix("rules"))
            self.add_error(self.field_for(path), f"{where}: {item['message']}")
