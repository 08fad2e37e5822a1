from __future__ import annotations

from uuid import UUID

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from approvals.models import ApprovalDecision, ApprovalRequest
from approvals.services import MAX_NOTES, approval_refusal_now
from controlplane.access import Actor
from controlplane.serializers import StrictCharField, StrictSerializer

# --- input ------------------------------------------------------------------------------------


class DecideSerializer(StrictSerializer):
    """An approver's approve or reject."""

    notes = StrictCharField(
        max_length=MAX_NOTES,
        required=False,
        allow_blank=True,
        default="",
        help_text="Why (shown on the run; a rejected tool call tells the agent).",
    )


# --- output -----------------------------------------------------------------------------------


class ApprovalDecisionSerializer(serializers.ModelSerializer[ApprovalDecision]):
    user = serializers.CharField(
        source="user_label",
        read_only=True,
        help_text="Who decided, as recorded (with the API key, when one was used).",
    )

    class Meta:
        model = ApprovalDecision
        fields = ["user", "verdict", "notes", "at"]
        read_only_fields = fields


class ApprovalSerializer(serializers.ModelSerializer[ApprovalRequest]):
    """An approval request: what would run, who may decide, the decisions so far, and
    whether you may decide it now (if not, why)."""

    # One shape for the list and the detail, so that a queue can show its Approve and
    # Reject buttons. Needs {"actor": …} in the context, and requests with agent and
    # execution selected and decisions prefetched (approvals.selectors does).

    approval_id = serializers.UUIDField(source="id", read_only=True)
    execution_id = serializers.UUIDField(read_only=True)
    # The run's statuses, read through the request's relation to it (approvals import
    # nothing of executions).
    execution_status = serializers.ChoiceField(
        source="execution.status",
        # mypy sees a Model: it is executions.Execution, which approvals may not import.
        choices=ApprovalRequest.execution.field.related_model.Status.choices,  # type: ignore[attr-defined]
        read_only=True,
    )
    agent_id = serializers.UUIDField(read_only=True)
    agent_name = serializers.CharField(source="agent.name", read_only=True)
    policy_id = serializers.UUIDField(read_only=True, allow_null=True)
    requested_action = serializers.JSONField(
        read_only=True, help_text="Exactly what will run once approved."
    )
    action_hash = serializers.CharField(
        read_only=True, help_text="SHA-256 of requested_action (canonical JSON)."
    )
    approvers = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="E-mails or group:NAME."
    )
    approvals = serializers.SerializerMethodField(help_text="Approvals given so far.")
    requested_by = serializers.CharField(source="requested_by_label", read_only=True)
    decisions = ApprovalDecisionSerializer(many=True, read_only=True)
    can_decide = serializers.SerializerMethodField(
        help_text="Whether the caller may approve or reject it now."
    )
    refusal = serializers.SerializerMethodField(
        help_text="Why the caller may not decide it now (null when they may)."
    )

    class Meta:
        model = ApprovalRequest
        fields = [
            "approval_id",
            "execution_id",
            "execution_status",
            "agent_id",
            "agent_name",
            "policy_id",
            "policy_name",
            "action",
            "call_key",
            "requested_action",
            "action_hash",
            "reason",
            "risk_level",
            "status",
            "approvers",
            "required_approvals",
            "approvals",
            "allow_self_approval",
            "on_reject",
            "on_expire",
            "requested_by",
            "created_at",
            "expires_at",
            "decided_by",
            "decided_at",
            "review_notes",
            "decisions",
            "can_decide",
            "refusal",
        ]
        read_only_fields = fields

    def get_approvals(self, obj: ApprovalRequest) -> int:
        # Counted over the prefetched decisions: no query per request.
        return obj.approval_count

    def _refusal(self, obj: ApprovalRequest) -> str | None:
        # Asked twice per request (can_decide, refusal); the answer may cost a query.
        cache: dict[UUID, str | None] = self.__dict__.setdefault("_refusals", {})
        if obj.pk not in cache:
            actor: Actor = self.context["actor"]
            cache[obj.pk] = approval_refusal_now(actor, obj)
        return cache[obj.pk]

    def get_can_decide(self, obj: ApprovalRequest) -> bool:
        return self._refusal(obj) is None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_refusal(self, obj: ApprovalRequest) -> str | None:
        return self._refusal(obj)
