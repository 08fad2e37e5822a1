from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from django import forms

from agents.config import validate_semver
from agents.models import Agent

if TYPE_CHECKING:
    from rest_framework.exceptions import ErrorDetail


class VersionCreateForm(forms.Form):
    version = forms.CharField(max_length=50, help_text="Semantic version, e.g. 1.3.0")
    clone_from = forms.ChoiceField(help_text="The new draft starts as a copy of this version.")
    changelog = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args: Any, agent: Agent, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        versions = list(agent.versions.order_by("-created_at").values_list("version", "stage"))
        cast(forms.ChoiceField, self.fields["clone_from"]).choices = [
            (v, f"{v} ({stage})") for v, stage in versions
        ]
        if versions and not self.is_bound:
            self.initial.setdefault("version", _next_patch(versions[0][0]))

    def clean_version(self) -> str:
        from rest_framework.exceptions import ValidationError

        try:
            return validate_semver(self.cleaned_data["version"])
        except ValidationError as exc:
            # Raised with one message: its detail is a list of one.
            raise forms.ValidationError(str(cast("list[ErrorDetail]", exc.detail)[0])) from None


class VersionEditForm(forms.Form):
    config = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "code"}),
        help_text="The whole config as JSON; it is validated as a whole when saved.",
    )
    changelog = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def clean_config(self) -> dict[str, Any]:
        return json_object(self.cleaned_data["config"])


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
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


STARTER_CONFIG = {
    "runtime": "llm",
    "llm": {"provider": "simulated", "system_prompt": "You help."},
    "capabilities": {"read": True, "write": False, "notify": False, "execute": False},
    "input_schema": {"type": "object"},
    "trigger": {"type": "manual"},
}


class AgentRegisterForm(forms.Form):
    """The console's "Register an agent": the agent and its first version (a draft), as
    ``POST /api/v1/agents`` takes them; the config is validated by the same serializer."""

    name = forms.CharField(
        max_length=100, help_text="Lowercase letters, digits, - and _; unique; it cannot change."
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    owner_email = forms.EmailField(max_length=255, help_text="Who answers for this agent.")
    team = forms.ChoiceField(
        required=False, help_text="This group's members may see, change and run the agent."
    )
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. support, tier-1")
    version = forms.CharField(max_length=50, initial="1.0.0", help_text="Semantic version.")
    config = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "false", "class": "code"}),
        initial=json.dumps(STARTER_CONFIG, indent=2),
        help_text='The first version\'s config as JSON (README, "Agent config"): runtime, llm, '
        "tools, capabilities, input_schema, trigger…",
    )

    def __init__(self, *args: Any, teams: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["team"]).choices = [
            ("", "no team"),
            *[(name, name) for name in teams],
        ]

    def clean_config(self) -> dict[str, Any]:
        return json_object(self.cleaned_data["config"])

    def payload(self) -> dict[str, Any]:
        data = self.cleaned_data
        tags = [tag.strip() for tag in data["tags"].split(",") if tag.strip()]
        fields = {
            "name": data["name"],
            "description": data["description"],
            "owner_email": data["owner_email"],
            "version": data["version"],
            **({"team": data["team"]} if data["team"] else {}),
            **({"tags": tags} if tags else {}),
        }
        return {**data["config"], **fields}
