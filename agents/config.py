"""What a valid agent version config is, in one place.

``VersionConfigSerializer`` accepts seed 000's flat fields (``trigger_type``,
``n8n_workflow_id``...) and the full form, checks types, JSON Schemas, cron expressions and
that every tool has the capability and destination it needs, and ``normalize_config``
returns the stored form: every key present, defaults filled in. A stored config is itself
valid input, so editing a draft is "merge the change into the config, validate again".
Used by the API, the admin, the console and the demo loader alike.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from controlplane.cron import CronError, parse
from controlplane.jsonschemas import SchemaProblem, check_schema, validator
from controlplane.serializers import (
    JSONObjectField,
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
    StrictURLField,
    TimeZoneField,
)
from integrations.catalog import CAPABILITIES, DATA_SCOPES, DESTINATIONS, LLM_PROVIDERS
from integrations.llm.simulated import DEFAULT_FAILURE as DEFAULT_SIMULATED_FAILURE
from integrations.llm.simulated import FAILURES as SIMULATED_FAILURES
from integrations.tools.registry import TOOLS

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,49}$")
# semver.org's regular expression
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)

RUNTIMES = ("llm", "n8n", "webhook")
TRIGGER_TYPES = ("manual", "webhook", "cron", "event")
EVAL_TYPES = ("functional", "quality", "safety", "latency", "consistency", "cost", "freshness")
DEFAULT_MODELS = {
    # Current, priced and not scheduled for retirement (the SDK retires claude-sonnet-4-5
    # on 2026-11-30); operators choose their model per version.
    "anthropic": "claude-haiku-4-5",
    "openai": "gpt-4o-mini",
    "simulated": "simulated-1",
}


def validate_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValidationError(
            "Use 1-100 lowercase letters, digits, '-' or '_', starting with a letter or digit.",
            code="invalid_name",
        )
    try:
        uuid.UUID(value)
    except ValueError:
        return value
    raise ValidationError("A name cannot look like an agent id (a UUID).", code="invalid_name")


def validate_semver(value: str) -> str:
    if not SEMVER_RE.match(value):
        raise ValidationError(
            "Must be a semantic version such as 1.2.0 or 2.0.0-rc.1.", code="invalid_version"
        )
    return value


def validate_tag(value: str) -> str:
    if len(value) > 50:
        raise ValidationError("A tag is at most 50 characters.", code="max_length")
    if not TAG_RE.match(value):
        raise ValidationError(
            "A tag starts with a letter or digit and holds letters, digits and _ . : / -",
            code="invalid_tag",
        )
    return value


def validate_json_schema(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` if it is a JSON Schema this server runs (``controlplane.jsonschemas``: no
    remote references, patterns RE2 can run, valid against its dialect)."""
    try:
        return check_schema(value)
    except SchemaProblem as exc:
        raise ValidationError(str(exc), code="invalid_schema") from None


def _flags(names: tuple[str, ...], help_text: str) -> type[StrictSerializer]:
    fields = {name: StrictBooleanField(default=False) for name in names}
    return type(f"{help_text}Serializer", (StrictSerializer,), fields)


CapabilitiesSerializer = _flags(CAPABILITIES, "Capabilities")
AllowedDestinationsSerializer = _flags(DESTINATIONS, "AllowedDestinations")


class DataScopeSerializer(StrictSerializer):
    datasets = serializers.ListField(
        child=StrictCharField(max_length=200), default=list, max_length=200
    )
    apis = serializers.ListField(
        child=StrictCharField(max_length=200), default=list, max_length=200
    )
    services = serializers.ListField(
        child=StrictCharField(max_length=200), default=list, max_length=200
    )


class SimulatedToolCallSerializer(StrictSerializer):
    name = StrictCharField(max_length=100)
    arguments = JSONObjectField(default=dict)


class SimulatedTurnSerializer(StrictSerializer):
    text = StrictCharField(max_length=100_000, allow_blank=True, default="", trim_whitespace=False)
    # many=True makes a ListSerializer, which takes max_length (the stubs omit it).
    tool_calls = SimulatedToolCallSerializer(many=True, default=list, max_length=20)  # type: ignore[call-arg]


class SimulationSerializer(StrictSerializer):
    """The script of the ``simulated`` provider (``integrations.llm.simulated``): what each
    turn answers, the final text, the latency and the failures to play."""

    # many=True makes a ListSerializer, which takes max_length (the stubs omit it).
    turns = SimulatedTurnSerializer(many=True, default=list, max_length=100)  # type: ignore[call-arg]
    text = StrictCharField(max_length=100_000, allow_null=True, default=None, trim_whitespace=False)
    latency_ms = StrictIntegerField(min_value=0, max_value=600_000, default=0)
    fail_times = StrictIntegerField(min_value=0, max_value=100, default=0)
    fail_with = serializers.ChoiceField(
        choices=list(SIMULATED_FAILURES), default=DEFAULT_SIMULATED_FAILURE
    )


class LLMSerializer(StrictSerializer):
    provider = serializers.ChoiceField(choices=LLM_PROVIDERS, default="simulated")
    model = StrictCharField(max_length=100, required=False)
    system_prompt = StrictCharField(
        max_length=100_000, allow_blank=True, default="", trim_whitespace=False
    )
    temperature = StrictFloatField(min_value=0, max_value=2, default=0.2)
    max_tokens = StrictIntegerField(min_value=1, max_value=200_000, default=1024)
    base_url = StrictURLField(max_length=500, required=False, allow_null=True, default=None)
    # Optional and without a default, like the tool configs' newer fields: a config stored
    # before it existed normalizes to exactly itself (same config_hash).
    simulation = SimulationSerializer(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.root.partial:
            return attrs
        if not attrs.get("model"):
            attrs["model"] = DEFAULT_MODELS[attrs["provider"]]
        return attrs


class ToolSerializer(StrictSerializer):
    name = serializers.ChoiceField(choices=sorted(TOOLS))
    config = JSONObjectField(default=dict)


# A cron trigger's own settings (the schedules app reads them, with these defaults):
# optional and without a default, so that a config stored before they existed normalizes
# to exactly itself (same config_hash).
CRON_SETTINGS = ("input", "overlap", "catch_up", "jitter_seconds", "pause_after_failures")


class TriggerSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=TRIGGER_TYPES, default="manual")
    schedule = StrictCharField(max_length=100, required=False, allow_null=True, default=None)
    timezone = TimeZoneField()
    events = serializers.ListField(
        child=StrictCharField(max_length=100), default=list, max_length=50
    )
    input = JSONObjectField(required=False, help_text="The input of each cron run (default {}).")
    overlap = serializers.ChoiceField(
        choices=["skip", "queue", "allow"],
        required=False,
        help_text="A fire while a run of the agent is still going: skip it (default), queue "
        "it until the run ends, or allow both.",
    )
    catch_up = serializers.ChoiceField(
        choices=["once", "skip"],
        required=False,
        help_text="Fires missed while beat or the workers were down: run once (default) or skip.",
    )
    jitter_seconds = StrictIntegerField(
        min_value=0, max_value=3600, required=False, help_text="Delay each fire by 0…N seconds."
    )
    pause_after_failures = StrictIntegerField(
        min_value=0,
        max_value=1000,
        required=False,
        help_text="Pause the schedule after this many failed runs in a row (0: never; "
        "default SCHEDULE_PAUSE_AFTER_FAILURES).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.root.partial:
            return attrs
        schedule = attrs.get("schedule")
        if attrs["type"] == "cron":
            if not schedule:
                raise ValidationError({"schedule": ["A cron trigger needs a schedule."]})
            try:
                parse(schedule)
            except CronError as exc:
                raise ValidationError({"schedule": [str(exc)]}) from None
        else:
            if schedule:
                raise ValidationError({"schedule": ["Only a cron trigger has a schedule."]})
            extra = [name for name in CRON_SETTINGS if name in attrs]
            if extra:
                raise ValidationError({name: ["Only a cron trigger has this."] for name in extra})
        if attrs["type"] == "event" and not attrs["events"]:
            raise ValidationError({"events": ["An event trigger needs at least one event name."]})
        return attrs


class EvalSerializer(StrictSerializer):
    name = StrictCharField(max_length=100)
    type = serializers.ChoiceField(choices=EVAL_TYPES)
    blocking = StrictBooleanField(default=False)
    params = JSONObjectField(default=dict)


class VersionConfigSerializer(StrictSerializer):
    """The behaviour of one agent version (DESIGN.md, "AgentVersion")."""

    runtime = serializers.ChoiceField(choices=RUNTIMES, required=False)
    llm = LLMSerializer(required=False, allow_null=True)
    tools = ToolSerializer(many=True, required=False)
    capabilities = CapabilitiesSerializer(required=False)
    data_scope = DataScopeSerializer(required=False)
    allowed_destinations = AllowedDestinationsSerializer(required=False)
    input_schema = JSONObjectField(required=False)
    output_schema = JSONObjectField(required=False)
    evals = EvalSerializer(many=True, required=False)
    timeout_seconds = StrictIntegerField(min_value=1, max_value=86_400, default=300)
    max_turns = StrictIntegerField(min_value=1, max_value=100, default=10)
    max_retries = StrictIntegerField(min_value=0, max_value=10, default=0)
    trigger = TriggerSerializer(required=False)
    trigger_type = serializers.ChoiceField(
        choices=TRIGGER_TYPES,
        required=False,
        write_only=True,
        help_text="Seed 000's flat form of trigger.type.",
    )
    n8n_workflow_id = StrictCharField(max_length=255, required=False, allow_null=True, default=None)
    webhook_url = StrictURLField(max_length=500, required=False, allow_null=True, default=None)

    def validate_input_schema(self, value: dict[str, Any]) -> dict[str, Any]:
        return validate_json_schema(value)

    def validate_output_schema(self, value: dict[str, Any]) -> dict[str, Any]:
        return validate_json_schema(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Whole: ``{"config": <stored form>, **other fields}``; partial: the fields as given."""
        if self.partial or self.root.partial:
            return attrs  # a partial change is merged into a config, then validated whole
        config_attrs = {key: attrs.pop(key) for key in list(attrs) if key in CONFIG_FIELDS}
        return {**attrs, "config": normalize_config(config_attrs)}


CONFIG_FIELDS = frozenset(VersionConfigSerializer().fields)


def _trigger_from(attrs: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    trigger = dict(
        attrs.get("trigger")
        or {"type": "manual", "schedule": None, "timezone": "UTC", "events": []}
    )
    flat_type = attrs.get("trigger_type")
    if not flat_type:
        return trigger
    if "trigger" in attrs and attrs["trigger"]["type"] != flat_type:
        errors["trigger_type"] = ["Disagrees with trigger.type; give one of them."]
        return trigger
    checked = TriggerSerializer(data={**trigger, "type": flat_type})
    if checked.is_valid():
        return dict(checked.validated_data)
    for field, messages in checked.errors.items():
        errors[f"trigger.{field}"] = [str(message) for message in messages]
    return trigger


def _tools_from(
    attrs: dict[str, Any],
    runtime: str,
    capabilities: dict[str, bool],
    destinations: dict[str, bool],
    errors: dict[str, list[str]],
) -> list[dict[str, Any]]:
    tools = attrs.get("tools") or []
    if tools and runtime != "llm":
        errors["tools"] = ["Tools are offered to a model: only the llm runtime uses them."]
    seen: set[str] = set()
    normalized = []
    for index, tool in enumerate(tools):
        spec = TOOLS[tool["name"]]  # the tool's declarations (capability, destination, config)
        where = f"tools[{index}]"
        problems = []
        if spec.name in seen:
            problems.append(f"{spec.name} is listed twice.")
        seen.add(spec.name)
        if not capabilities.get(spec.capability):
            problems.append(f"{spec.name} needs capabilities.{spec.capability} to be true.")
        if not destinations.get(spec.destination):
            problems.append(
                f"{spec.name} needs allowed_destinations.{spec.destination} to be true."
            )
        if problems:
            errors[f"{where}.name"] = problems
        tool_config = spec.config_serializer(data=tool.get("config", {}))
        if tool_config.is_valid():
            normalized.append({"name": spec.name, "config": dict(tool_config.validated_data)})
        else:
            for field, messages in tool_config.errors.items():
                errors[f"{where}.config.{field}"] = [str(message) for message in messages]
    return normalized


def normalize_config(attrs: dict[str, Any]) -> dict[str, Any]:
    """The stored form of validated config fields; ValidationError on a cross-field rule."""
    errors: dict[str, list[str]] = {}
    trigger = _trigger_from(attrs, errors)
    llm = attrs.get("llm")
    runtime = attrs.get("runtime") or ("n8n" if attrs.get("n8n_workflow_id") and not llm else "llm")
    if runtime == "llm" and llm is None:
        llm = LLMSerializer().run_validation({})
    if runtime == "n8n" and not attrs.get("n8n_workflow_id"):
        errors["n8n_workflow_id"] = ["The n8n runtime needs the workflow id."]
    if runtime == "webhook" and not attrs.get("webhook_url"):
        errors["webhook_url"] = ["The webhook runtime needs the URL to call."]
    capabilities = dict(attrs.get("capabilities") or dict.fromkeys(CAPABILITIES, False))
    destinations = dict(attrs.get("allowed_destinations") or dict.fromkeys(DESTINATIONS, False))
    tools = _tools_from(attrs, runtime, capabilities, destinations, errors)
    input_schema = attrs.get("input_schema") or {"type": "object"}
    if trigger.get("type") == "cron" and not errors:
        _check_cron_input(trigger.get("input", {}), input_schema, errors)
    if errors:
        raise ValidationError(errors)
    data_scope = attrs.get("data_scope") or {scope: [] for scope in DATA_SCOPES}
    return {
        "runtime": runtime,
        "llm": dict(llm) if llm else None,
        "tools": tools,
        "capabilities": capabilities,
        "data_scope": {key: list(value) for key, value in data_scope.items()},
        "allowed_destinations": destinations,
        "input_schema": input_schema,
        "output_schema": attrs.get("output_schema") or {},
        "evals": [dict(item) for item in attrs.get("evals") or []],
        "timeout_seconds": attrs.get("timeout_seconds", 300),
        "max_turns": attrs.get("max_turns", 10),
        "max_retries": attrs.get("max_retries", 0),
        "trigger": trigger,
        "n8n_workflow_id": attrs.get("n8n_workflow_id"),
        "webhook_url": attrs.get("webhook_url"),
    }


def _check_cron_input(
    value: dict[str, Any], schema: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    """Each cron run gets ``trigger.input``: it must pass the input schema now, not fail at
    every fire."""
    messages = []
    for error in validator(schema).iter_errors(value):
        where = ".".join(str(part) for part in error.absolute_path)
        messages.append(f"{where + ': ' if where else ''}{error.message}")
    if messages:
        errors["trigger.input"] = [f"Does not match the input schema: {m}" for m in messages[:20]]


# Keys whose value is an object merged key by key when a draft is edited; others are replaced.
MERGED_KEYS = ("llm", "capabilities", "data_scope", "allowed_destinations", "trigger")


def merge_config(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``change`` (raw request fields) applied to a stored config, ready to validate whole."""
    merged: dict[str, Any] = json.loads(json.dumps(base))
    for key, value in change.items():
        if key in MERGED_KEYS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        elif key == "trigger_type":
            merged["trigger"] = {**(merged.get("trigger") or {}), "type": value}
            if value != "cron":
                merged["trigger"]["schedule"] = None
                for name in CRON_SETTINGS:
                    merged["trigger"].pop(name, None)
        else:
            merged[key] = value
    if change.get("runtime") and change["runtime"] != "llm" and "llm" not in change:
        merged["llm"] = None
    return merged


def validated_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate a whole config (raw or stored form); ValidationError with field paths if bad."""
    serializer = VersionConfigSerializer(data=raw)
    serializer.is_valid(raise_exception=True)
    config: dict[str, Any] = serializer.validated_data["config"]
    return config


def config_hash(config: dict[str, Any]) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
