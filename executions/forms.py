"""The Run form: a Django form generated from a version's ``input_schema`` (JSON Schema),
and the way back from its cleaned values to the JSON input the service validates.

Each top-level property becomes one field:

=====================================  =============================================
schema                                 field
=====================================  =============================================
``enum`` (or ``const``), any type      select
string                                 text input; ``format`` email → type=email,
                                       uri → type=url, date-time → datetime-local
                                       (UTC), date → type=date; ``maxLength`` > 200
                                       → textarea
integer, number                        number input (``minimum``/``maximum``)
boolean                                checkbox
array of strings                       textarea, one item per line
anything else (objects, other arrays)  a JSON textarea
=====================================  =============================================

The form only turns text into JSON values. Whether those values are valid is the input
schema's business, checked once, by ``executions.trigger.validate_input``: its errors
(``input.email``, ``input.tags[2]``) are put back on the fields they name with
``InputForm.add_input_errors``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from django import forms
from django.utils import timezone

from controlplane.forms import UTCDateTimeField, parse_json

LONG_TEXT = 200  # a string that may be longer than this gets a textarea
SAFE_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")
# --- fields whose cleaned value is the JSON value (None: leave the property out) ------------


class StringField(forms.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(empty_value=None, **kwargs)


class EnumField(forms.ChoiceField):
    """A select of the schema's values; strings are offered as they are, other values as
    JSON, and each comes back as the value it stands for."""

    def __init__(self, *, values: list[Any], **kwargs: Any) -> None:
        self.values = {enum_key(value): value for value in values}
        choices = [(key, key) for key in self.values]
        if not kwargs.get("required", True):
            choices.insert(0, ("", "—"))
        super().__init__(choices=choices, **kwargs)

    def clean(self, value: Any) -> Any:
        key = super().clean(value)
        return self.values.get(key)


def enum_key(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class NumberField(forms.FloatField):
    def clean(self, value: Any) -> Any:
        number = super().clean(value)
        if number is not None and number.is_integer() and abs(number) < 2**53:
            return int(number)  # "3" is sent as 3, not 3.0
        return number


class DateField(forms.DateField):
    def clean(self, value: Any) -> Any:
        day = super().clean(value)
        return day.isoformat() if day is not None else None


class LinesField(forms.CharField):
    """An array of strings, one per line; blank lines are dropped."""

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        if not text:
            return None
        return [line.strip() for line in text.splitlines() if line.strip()]


class JSONTextField(forms.CharField):
    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        if not text:
            return None
        return parse_json(text)


# --- schema → field --------------------------------------------------------------------------


def _type_of(schema: dict[str, Any]) -> str | None:
    """The property's type; of a union with null (["string", "null"]), the other one."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [item for item in kind if item != "null"]
        return kinds[0] if len(kinds) == 1 else None
    return kind if isinstance(kind, str) else None


def _number_attrs(schema: dict[str, Any], step: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {"step": step}
    for key, attr in (("minimum", "min"), ("maximum", "max")):
        if isinstance(schema.get(key), int | float) and not isinstance(schema[key], bool):
            attrs[attr] = schema[key]
    return attrs


def _parsed_moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if timezone.is_aware(moment):
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def field_for(schema: dict[str, Any], *, required: bool) -> tuple[forms.Field, Any]:
    """A form field for one property's schema, and its initial value (the schema's
    default, in the widget's terms)."""
    default = schema.get("default")
    kind = _type_of(schema)
    common: dict[str, Any] = {"required": required}

    values = schema.get("enum") if "enum" in schema else None
    if values is None and "const" in schema:
        values = [schema["const"]]
    if isinstance(values, list) and values:
        initial = enum_key(default) if "default" in schema else None
        return EnumField(values=values, **common), initial

    widget: forms.Widget
    if kind == "string":
        fmt = schema.get("format")
        text_attrs: dict[str, Any] = {}
        if isinstance(schema.get("maxLength"), int):
            text_attrs["maxlength"] = schema["maxLength"]
        if isinstance(schema.get("minLength"), int):
            text_attrs["minlength"] = schema["minLength"]
        if fmt == "date-time":
            widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
            return UTCDateTimeField(widget=widget, **common), _parsed_moment(default)
        if fmt == "date":
            try:
                day = date.fromisoformat(default) if isinstance(default, str) else None
            except ValueError:
                day = None
            widget = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
            return DateField(widget=widget, **common), day
        if fmt == "email":
            widget = forms.EmailInput(attrs=text_attrs)
        elif fmt == "uri":
            widget = forms.URLInput(attrs=text_attrs)
        elif text_attrs.get("maxlength", 0) > LONG_TEXT:
            widget = forms.Textarea(attrs={"rows": 4, **text_attrs})
        else:
            widget = forms.TextInput(attrs=text_attrs)
        return StringField(widget=widget, **common), default if isinstance(default, str) else None

    if kind == "integer":
        widget = forms.NumberInput(attrs=_number_attrs(schema, "1"))
        return forms.IntegerField(widget=widget, **common), default

    if kind == "number":
        widget = forms.NumberInput(attrs=_number_attrs(schema, "any"))
        return NumberField(widget=widget, **common), default

    if kind == "boolean":
        # A checkbox is always sent (unchecked is false), so it is never "missing".
        return forms.BooleanField(required=False), bool(default)

    items = schema.get("items")
    if kind == "array" and isinstance(items, dict) and _type_of(items) == "string":
        initial = "\n".join(str(item) for item in default) if isinstance(default, list) else None
        widget = forms.Textarea(attrs={"rows": 4})
        return LinesField(widget=widget, **common), initial

    initial = json.dumps(default, indent=2) if "default" in schema else None
    widget = forms.Textarea(attrs={"rows": 5, "class": "code", "spellcheck": "false"})
    return JSONTextField(widget=widget, **common), initial


def _help_text(schema: dict[str, Any], field: forms.Field) -> str:
    parts = [str(schema["description"])] if schema.get("description") else []
    if isinstance(field, UTCDateTimeField):
        parts.append("In UTC.")
    elif isinstance(field, LinesField):
        parts.append("One per line.")
    elif isinstance(field, JSONTextField):
        parts.append("JSON.")
    return " ".join(parts)


# --- the forms --------------------------------------------------------------------------------


class InputForm(forms.Form):
    """Generated by ``input_form_class``: one field per property of the input schema."""

    # field name → property name
    properties: ClassVar[dict[str, str]] = {}
    # The raw JSON alternative may be used instead, so no field stops the browser from
    # submitting: the required ones are marked, and checked here and by the service.
    use_required_attribute = False

    def to_input(self) -> dict[str, Any]:
        """The JSON input from the cleaned values; empty fields are left out."""
        return {
            prop: self.cleaned_data[name]
            for name, prop in self.properties.items()
            if self.cleaned_data.get(name) is not None
        }

    def field_for_path(self, path: str) -> str | None:
        """The field that a validation error's path (``input.address.city``) belongs to."""
        for name, prop in sorted(self.properties.items(), key=lambda item: -len(item[1])):
            base = f"input.{prop}"
            if path == base or path.startswith((f"{base}.", f"{base}[")):
                return name
        return None

    def add_input_errors(self, problems: list[dict[str, Any]]) -> None:
        """The service's ``validationErrors``, each on the field its path names; errors
        about the input as a whole (a missing property, an extra one) above the form."""
        for problem in problems:
            path, message = str(problem.get("field", "")), str(problem.get("message", ""))
            name = self.field_for_path(path)
            if name is None:
                self.add_error(None, f"{path}: {message}" if path else message)
            else:
                below = path[len(f"input.{self.properties[name]}") :]
                self.add_error(name, f"{below.lstrip('.')}: {message}" if below else message)


def input_form_class(schema: dict[str, Any] | None) -> type[InputForm]:
    """A form class for ``schema`` (a version's ``input_schema``). A schema without
    properties makes a form without fields: the raw JSON input is the whole form then."""
    schema = schema if isinstance(schema, dict) else {}
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        properties = {}
    required = set(schema.get("required") or [])
    fields: dict[str, forms.Field] = {}
    names: dict[str, str] = {}
    for index, (prop, prop_schema) in enumerate(properties.items()):
        prop_schema = prop_schema if isinstance(prop_schema, dict) else {}
        name = f"input.{prop}" if SAFE_NAME.match(prop) else f"input.{index}"
        field, field_initial = field_for(prop_schema, required=prop in required)
        field.label = str(prop_schema.get("title") or prop)
        field.help_text = _help_text(prop_schema, field)
        field.schema_required = prop in required  # type: ignore[attr-defined]
        field.initial = field_initial
        fields[name] = field
        names[name] = prop
    attrs: dict[str, Any] = {**fields, "properties": names}
    return type("GeneratedInputForm", (InputForm,), attrs)


@dataclass(frozen=True)
class RawInput:
    value: Any


class RunForm(forms.Form):
    """What goes with the generated fields: which version, and the raw JSON alternative."""

    version = forms.CharField(required=False, max_length=50)
    raw_input = forms.CharField(
        required=False,
        label="Raw JSON input",
        strip=False,
        widget=forms.Textarea(attrs={"rows": 6, "class": "code", "spellcheck": "false"}),
        help_text="When filled, this JSON is the input and the fields above are ignored.",
    )

    def clean_version(self) -> str | None:
        return self.cleaned_data["version"] or None

    def clean_raw_input(self) -> RawInput | None:
        text = self.cleaned_data["raw_input"]
        if not text.strip():
            return None
        return RawInput(parse_json(text))
