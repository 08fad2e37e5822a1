"""Form pieces every app's console forms share: JSON typed by a person, a UTC moment."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from django import forms

from controlplane.serializers import JSON_PROBLEMS, json_problem

if TYPE_CHECKING:
    from controlplane.roles import Role


def parse_json(text: str) -> Any:
    """JSON typed by a person: a form error, never an exception, when it is not JSON."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise forms.ValidationError(f"Not valid JSON: {exc}", code="json") from None
    problem = json_problem(value)
    if problem:
        raise forms.ValidationError(JSON_PROBLEMS[problem], code=problem)
    return value


class UTCDateTimeField(forms.DateTimeField):
    """The browser's datetime-local value, taken as UTC, sent as RFC 3339."""

    def clean(self, value: Any) -> str | None:
        moment: datetime | None = super().clean(value)
        if moment is None:
            return None
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class APIKeyForm(forms.Form):
    name = forms.CharField(max_length=50, help_text="What the key is for, e.g. ci-deploy.")
    role = forms.ChoiceField(help_text="The key never has more rights than this role.")
    expiry_date = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Optional, in UTC. After this moment the key is refused.",
    )

    def __init__(self, *args: Any, roles: list[Role], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast(forms.ChoiceField, self.fields["role"])  # declared above
        field.choices = [(role.value, role.label) for role in roles]
