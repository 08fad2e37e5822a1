from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from agents.config import validate_tag
from agents.models import Agent, Tag
from agents.selectors import agent_get
from controlplane.access import actor_from_request
from controlplane.errors import NotFound
from controlplane.serializers import (
    JSONObjectField,
    JSONValueField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from integrations.catalog import DESTINATIONS
from policies.models import Policy
from policies.types.base import APPROVABLE_ACTIONS, COMPLEXITIES

# --- input ------------------------------------------------------------------------------------


class PolicyWriteSerializer(StrictSerializer):
    """Seed 000's policy payload. ``target_agent_id`` (an id or a name) is resolved among
    the agents the requesting user may see; ``rules`` are validated for the type by
    ``policies.services`` (errors under ``rules.…``). Needs the request in its context."""

    policy_name = StrictCharField(max_length=255)
    policy_type = serializers.ChoiceField(choices=Policy.Type.choices)
    applies_to = serializers.ChoiceField(choices=Policy.Scope.choices, default=Policy.Scope.ALL)
    target_agent_id = StrictCharField(
        max_length=100,
        required=False,
        allow_null=True,
        help_text="For a policy that applies to one agent: the agent's id or name.",
    )
    target_tags = serializers.ListField(
        # DRF ignores what a validator returns (this one returns the value for its other callers).
        child=StrictCharField(max_length=50, validators=[validate_tag]),  # type: ignore[list-item]
        required=False,
        max_length=50,
        help_text="For a policy that applies to a tag: the tag names.",
    )
    rules = JSONObjectField(
        required=False, help_text="The rules of the policy type (see the policy types)."
    )
    enabled = StrictBooleanField(default=True)
    priority = StrictIntegerField(
        min_value=0, max_value=1_000_000, default=100, help_text="Lower is looked at first."
    )

    def validate_target_agent_id(self, value: str | None) -> Agent | None:
        if value is None:
            return None
        try:
            return agent_get(actor=actor_from_request(self.context["request"]), ref=value)
        except NotFound:
            raise serializers.ValidationError(
                f"No agent {value!r}.", code="agent_not_found"
            ) from None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # The services take the resolved agent as ``target_agent``.
        if "target_agent_id" in attrs:
            attrs["target_agent"] = attrs.pop("target_agent_id")
        # A missing target is a field error, before any question of who may write it.
        if (
            not self.partial
            and attrs.get("applies_to") == Policy.Scope.AGENT
            and attrs.get("target_agent") is None
        ):
            raise serializers.ValidationError(
                {"target_agent_id": [ErrorDetail("A policy for one agent names it.", "required")]}
            )
        return attrs


class PolicyUpdateSerializer(PolicyWriteSerializer):
    """Any of the fields; the result is validated whole (a new type needs its rules)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("partial", True)
        super().__init__(*args, **kwargs)


class TargetField(serializers.JSONField):
    default_error_messages = {"invalid": "Must be a string or a list of strings."}

    # JSONField's stubs expect an object or a list of objects; this one takes strings.
    def to_internal_value(self, data: Any) -> str | list[str]:  # type: ignore[override]
        if isinstance(data, str) and len(data) <= 2000:
            return data
        if (
            isinstance(data, list)
            and len(data) <= 100
            and all(isinstance(item, str) and len(item) <= 2000 for item in data)
        ):
            return data
        self.fail("invalid")
        return ""  # not reached: fail() raises


class EvaluateSerializer(StrictSerializer):
    """A dry run: what would happen if the agent ran (or called a tool) now, and why."""

    agent = StrictCharField(max_length=100, help_text="The agent's id or name.")
    input = JSONValueField(default=dict, help_text="The run's input (or the tool's arguments).")
    at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="ISO 8601 date-time; default: now."
    )
    action = serializers.ChoiceField(
        choices=APPROVABLE_ACTIONS,
        default="execute",
        help_text='"execute" (a run) or the tool action being called.',
    )
    destination = serializers.ChoiceField(
        choices=DESTINATIONS,
        required=False,
        allow_null=True,
        help_text="At a tool call: the kind of place it sends to.",
    )
    target = TargetField(
        required=False, help_text="At a tool call: the channel, recipients or URL."
    )
    complexity = serializers.ChoiceField(
        choices=COMPLEXITIES,
        required=False,
        allow_null=True,
        help_text="A complexity hint for model routing.",
    )


# --- output -----------------------------------------------------------------------------------


class PolicySerializer(serializers.ModelSerializer[Policy]):
    policy_id = serializers.UUIDField(source="id", read_only=True)
    policy_type = serializers.ChoiceField(choices=Policy.Type.choices, read_only=True)
    applies_to = serializers.ChoiceField(choices=Policy.Scope.choices, read_only=True)
    target_agent_id = serializers.UUIDField(read_only=True, allow_null=True)
    target_agent_name = serializers.CharField(
        source="target_agent.name", read_only=True, allow_null=True, default=None
    )
    target_tags = serializers.SlugRelatedField[Tag](slug_field="name", many=True, read_only=True)
    rules = serializers.JSONField(read_only=True)
    created_by = serializers.SlugRelatedField[User](slug_field="username", read_only=True)

    class Meta:
        model = Policy
        fields = [
            "policy_id",
            "policy_name",
            "policy_type",
            "applies_to",
            "target_agent_id",
            "target_agent_name",
            "target_tags",
            "rules",
            "enabled",
            "priority",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TraceEntrySerializer(serializers.Serializer[dict[str, Any]]):
    policy_id = serializers.UUIDField()
    policy_name = serializers.CharField()
    policy_type = serializers.ChoiceField(choices=Policy.Type.choices)
    priority = serializers.IntegerField()
    verdict = serializers.CharField()
    reason = serializers.CharField()


class DecisionSerializer(serializers.Serializer[dict[str, Any]]):
    """The engine's decision (``policies.engine.Decision.as_dict``), for the schema."""

    outcome = serializers.ChoiceField(
        choices=["allow", "deny", "rate_limited", "delay", "require_approval"]
    )
    reason = serializers.CharField()
    policy_id = serializers.UUIDField(allow_null=True)
    policy_name = serializers.CharField(allow_null=True)
    policy_type = serializers.CharField(allow_null=True)
    delay_until = serializers.DateTimeField(allow_null=True)
    route = serializers.JSONField(allow_null=True)
    payload = serializers.JSONField(allow_null=True)
    approval = serializers.JSONField(allow_null=True)
    alerts = serializers.ListField(child=serializers.CharField())
    trace = TraceEntrySerializer(many=True)
