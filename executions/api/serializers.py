from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane.serializers import (
    JSONValueField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from executions.models import Execution, ExecutionLog
from policies.api.serializers import TraceEntrySerializer

# --- input ------------------------------------------------------------------------------------


class RunSerializer(StrictSerializer):
    """What to run with: the input (checked against the version's input_schema)."""

    input = JSONValueField(default=dict, help_text="Checked against the version's input_schema.")
    version = StrictCharField(
        max_length=50,
        required=False,
        help_text="Default: the production version. Naming the staging version runs it "
        "(marked as a staging run).",
    )
    complexity = serializers.ChoiceField(
        choices=["simple", "medium", "complex"],
        required=False,
        help_text="A hint for model-routing policies.",
    )


class ExecutionTriggerSerializer(RunSerializer):
    agent = StrictCharField(max_length=100, help_text="The agent's id or name.")


REPORT_STATUSES = ("success", "failed")


class ReportStepSerializer(StrictSerializer):
    step = StrictCharField(max_length=200)
    latency_ms = StrictIntegerField(min_value=0, max_value=10**9, required=False)
    status = serializers.ChoiceField(choices=REPORT_STATUSES, required=False)
    tokens_used = StrictIntegerField(min_value=0, max_value=10**9, required=False)


class ReportActionSerializer(StrictSerializer):
    action = StrictCharField(max_length=100)
    target = StrictCharField(max_length=500, required=False, allow_blank=True)
    method = StrictCharField(max_length=100, required=False, allow_blank=True)
    approved = serializers.BooleanField(required=False)
    auto_approved = serializers.BooleanField(required=False)


class ReportSerializer(StrictSerializer):
    """Seed 000's n8n callback, plus the optional token split (needed to price the tokens)."""

    status = serializers.ChoiceField(choices=REPORT_STATUSES)
    steps_executed = ReportStepSerializer(many=True, required=False)
    tokens_used = StrictIntegerField(min_value=0, max_value=10**9, required=False)
    prompt_tokens = StrictIntegerField(min_value=0, max_value=10**9, required=False)
    completion_tokens = StrictIntegerField(min_value=0, max_value=10**9, required=False)
    llm_provider = StrictCharField(max_length=50, required=False, allow_blank=True)
    llm_model = StrictCharField(max_length=100, required=False, allow_blank=True)
    actions_taken = ReportActionSerializer(many=True, required=False)
    output = JSONValueField(required=False, allow_null=True)
    output_summary = StrictCharField(max_length=10_000, required=False, allow_blank=True)
    error_message = StrictCharField(max_length=10_000, required=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("prompt_tokens" in attrs) != ("completion_tokens" in attrs):
            raise serializers.ValidationError(
                "Give both prompt_tokens and completion_tokens, or neither."
            )
        return attrs


# --- output -----------------------------------------------------------------------------------


def execution_links(execution: Execution) -> dict[str, str]:
    return {
        "self": reverse("api:execution-detail", args=[execution.pk]),
        "logs": reverse("api:execution-logs", args=[execution.pk]),
        "cancel": reverse("api:execution-cancel", args=[execution.pk]),
        "page": reverse("executions:detail", args=[execution.pk]),
    }


class ExecutionTriggeredSerializer(serializers.ModelSerializer[Execution]):
    """The 202 answer to a trigger."""

    execution_id = serializers.UUIDField(source="id")
    agent_name = serializers.CharField(source="agent.name")
    agent_version = serializers.CharField(source="agent_version.version")
    links = serializers.SerializerMethodField()

    class Meta:
        model = Execution
        fields = [
            "execution_id",
            "agent_id",
            "agent_name",
            "agent_version",
            "is_staging",
            "status",
            "trigger_source",
            "created_at",
            "links",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_links(self, obj: Execution) -> dict[str, str]:
        return execution_links(obj)


class ExecutionSerializer(ExecutionTriggeredSerializer):
    """A run in a list."""

    estimated_cost_usd = serializers.DecimalField(
        max_digits=12,
        decimal_places=6,
        coerce_to_string=False,
        allow_null=True,
        help_text="null when a model's price is unknown (never 0 for unknown).",
    )

    class Meta(ExecutionTriggeredSerializer.Meta):
        fields = [
            "execution_id",
            "agent_id",
            "agent_name",
            "agent_version",
            "is_staging",
            "status",
            "trigger_source",
            "trigger_user",
            "attempt",
            "created_at",
            "started_at",
            "completed_at",
            "llm_provider",
            "llm_model",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "estimated_cost_usd",
            "total_latency_ms",
            "output_summary",
            "error_type",
            "error_message",
            "cancel_requested",
            "links",
        ]
        read_only_fields = fields


class ExecutionDetailSerializer(ExecutionSerializer):
    """Seed 000's "Execution Log Response", plus what the run was given and returned."""

    steps_executed = serializers.SerializerMethodField()
    actions_taken = serializers.SerializerMethodField()
    policy_trace = TraceEntrySerializer(
        many=True,
        read_only=True,
        help_text="Every policy the trigger-time decision looked at, in order, with its verdict.",
    )
    routing = serializers.JSONField(
        read_only=True, help_text="The model a routing policy chose for this run, if any."
    )
    not_before = serializers.DateTimeField(
        read_only=True, help_text="A scheduled run's time (a time window, a rate or a slot)."
    )
    approvals = serializers.SerializerMethodField(
        help_text="The approval requests of this run (at its start or at tool calls)."
    )

    class Meta(ExecutionSerializer.Meta):
        fields = [
            *ExecutionSerializer.Meta.fields,
            "steps_executed",
            "actions_taken",
            "approvals",
            "input",
            "output",
            "policy_trace",
            "routing",
            "not_before",
            "idempotency_key",
            "parent_id",
            "trace_id",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_steps_executed(self, obj: Execution) -> list[dict[str, Any]]:
        steps = []
        for step in obj.steps.all():
            item: dict[str, Any] = {
                "step": step.name,
                "kind": step.kind,
                "latency_ms": step.latency_ms,
                "status": step.status,
                "started_at": step.started_at,
            }
            if step.kind == step.Kind.LLM_CALL or step.prompt_tokens or step.completion_tokens:
                item["tokens_used"] = step.prompt_tokens + step.completion_tokens
                item["cost_usd"] = None if step.cost_usd is None else float(step.cost_usd)
            if step.detail.get("error"):
                item["error"] = step.detail["error"]
            steps.append(item)
        return steps

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_actions_taken(self, obj: Execution) -> list[dict[str, Any]]:
        return [
            {
                "action": action.action,
                "target": action.target,
                "method": action.method,
                "status": action.status,
                "approved": action.approved,
                "auto_approved": action.auto_approved,
            }
            for action in obj.actions.all()
        ]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_approvals(self, obj: Execution) -> list[dict[str, Any]]:
        return [
            {
                "approval_id": str(request.pk),
                "action": request.action,
                "status": request.status,
                "risk_level": request.risk_level,
                "expires_at": request.expires_at,
                "decided_by": request.decided_by,
            }
            for request in obj.approvals.order_by("created_at")
        ]


class ExecutionLogSerializer(serializers.ModelSerializer[ExecutionLog]):
    timestamp = serializers.DateTimeField(source="at")

    class Meta:
        model = ExecutionLog
        fields = ["timestamp", "level", "message", "metadata"]
        read_only_fields = fields
