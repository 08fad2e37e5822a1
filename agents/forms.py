from __future__ import annotations

import json
from typing import Any

from django import forms

from agents.config import validate_semver
from agents.models import Agent


class VersionCreateForm(forms.Form):
    version = forms.CharField(max_length=50, help_text="Semantic version, e.g. 1.3.0")
    clone_from = forms.ChoiceField(help_text="The new draft starts as a copy of this version.")
    changelog = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args: Any, agent: Agent, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        versions = list(agent.versions.order_by("-created_at").values_list("version", "stage"))
        self.fields["clone_from"].choices = [(v, f"{v} ({stage})") for v, stage in versions]
        if versions and not self.is_bound:
            self.initial.setdefault("version", _next_patch(versions[0][0]))

    def clean_version(self) -> str:
        from rest_framework.exceptions import ValidationError

        try:
            return validate_semver(self.cleaned_data["version"])
        except ValidationError as exc:
            raise forms.ValidationError(str(exc.detail[0])) from None


class VersionEditForm(forms.Form):
    config = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "code"}),
        help_text="The whole config as JSON; it is validated as a whole when saved.",
    )
    changelog = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def clean_config(self) -> dict[str, Any]:
        try:
            value = json.loads(self.cleaned_data["config"])
        except (json.JSONDecodeError, RecursionError) as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("The config is a JSON object.")
        return value


def _next_patch(version: str) -> str:
    core = version.split("-", 1)[0].split("+", 1)[0]
    parts = core.split(".")
    try:
        return f"{parts[0]}.{parts[1]}.{int(parts[2]) + 1}"
    except (IndexError, ValueError):
        return ""
