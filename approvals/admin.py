"""Approval requests in the Django admin: read-only (a request leaves pending only by a
decision, an expiry or its run ending), limited to what the user may see, with Approve and
Reject actions that call ``approvals.services.approval_decide``; each refusal (not an
approver, already decided, …) is reported as a message."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, cast

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from approvals import selectors, services
from approvals.models import ApprovalDecision, ApprovalRequest
from controlplane.access import actor_from_request, can
from controlplane.admin import ReadOnlyAdmin, ReadOnlyInline
from controlplane.errors import ServiceError

if TYPE_CHECKING:
    # Generic in the stubs only: Django's ModelAdmin takes no type arguments at run time.
    ApprovalRequestModelAdmin = admin.ModelAdmin[ApprovalRequest]
else:
    ApprovalRequestModelAdmin = admin.ModelAdmin


class ApprovalDecisionInline(ReadOnlyInline):
    model = ApprovalDecision
    fields = ["user_label", "verdict", "notes", "at"]
    readonly_fields = cast("list[str]", fields)  # names, no groups


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ApprovalRequestModelAdmin):
    list_display = [
        "short_id",
        "status",
        "action",
        "agent",
        "risk_level",
        "approvals",
        "expires_at",
        "decided_by",
        "created_at",
    ]
    list_filter = ["status", "risk_level", "action"]
    list_select_related = ["agent"]
    search_fields = ["agent__name", "action", "policy_name", "requested_by_label", "decided_by"]
    search_help_text = (
        "A request, execution or agent id, or (part of) an agent's name, an action, a policy, "
        "who asked or who decided."
    )
    date_hierarchy = "created_at"
    inlines = [ApprovalDecisionInline]
    actions = ["approve_selected", "reject_selected"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "status",
                    "execution",
                    "agent",
                    "policy",
                    "policy_name",
                    "action",
                    "call_key",
                    "reason",
                    "risk_level",
                ]
            },
        ),
        ("What will run", {"fields": ["payload", "action_hash"]}),
        (
            "Who decides",
            {
                "fields": [
                    "approvers",
                    "required_approvals",
                    "allow_self_approval",
                    "requested_by_label",
                    "on_reject",
                    "on_expire",
                ]
            },
        ),
        (
            "Outcome",
            {"fields": ["decided_by", "decided_at", "review_notes"]},
        ),
        ("Times", {"fields": ["created_at", "warn_at", "warned_at", "expires_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApprovalRequest]:
        return selectors.approval_visible_qs(actor=actor_from_request(request)).prefetch_related(
            "decisions"
        )

    def get_readonly_fields(
        self, request: HttpRequest, obj: ApprovalRequest | None = None
    ) -> list[str]:
        return flatten_fieldsets(self.fieldsets)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ApprovalRequest], search_term: str
    ) -> tuple[QuerySet[ApprovalRequest], bool]:
        # An id is matched exactly, as a UUID (as for executions: the text form of a UUID
        # column differs between databases).
        try:
            pk = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(Q(pk=pk) | Q(execution_id=pk) | Q(agent_id=pk)), False

    @admin.display(description="id")
    def short_id(self, obj: ApprovalRequest) -> str:
        return str(obj.pk)[:8]

    @admin.display(description="approvals")
    def approvals(self, obj: ApprovalRequest) -> str:
        return f"{obj.approval_count} of {obj.required_approvals}"

    @admin.display(description="requested action")
    def payload(self, obj: ApprovalRequest) -> str:
        return format_html(
            "<pre>{}</pre>",
            json.dumps(obj.requested_action, indent=2, sort_keys=True, ensure_ascii=False),
        )

    # Which requests: the queryset; whether requests at all, and the buttons: the role.
    def has_view_permission(self, request: HttpRequest, obj: ApprovalRequest | None = None) -> bool:
        return can(actor_from_request(request), "approvals.view_approvalrequest")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the policy engine opens requests

    def has_change_permission(
        self, request: HttpRequest, obj: ApprovalRequest | None = None
    ) -> bool:
        return False  # a request changes only by a decision (the actions), expiry or its run

    def has_delete_permission(
        self, request: HttpRequest, obj: ApprovalRequest | None = None
    ) -> bool:
        return False  # the record of who allowed what

    def has_decide_permission(self, request: HttpRequest) -> bool:
        """Offers the actions to roles that may decide (each request is checked by the
        service: its approvers, self-approval, still pending)."""
        return can(actor_from_request(request), "approvals.decide_approvalrequest")

    def _decide(
        self, request: HttpRequest, queryset: QuerySet[ApprovalRequest], verdict: str
    ) -> None:
        actor = actor_from_request(request)
        for approval in queryset.select_related("agent"):
            label = f"{approval.agent.name}: {approval.action} ({str(approval.pk)[:8]})"
            try:
                decided = services.approval_decide(actor=actor, request=approval, verdict=verdict)
            except ServiceError as exc:
                self.message_user(request, f"{label}: {exc.message}", messages.ERROR)
                continue
            if decided.is_pending:
                done = (
                    f"approval recorded ({decided.approval_count} of {decided.required_approvals})."
                )
            else:
                done = f"{decided.status}."
            self.message_user(request, f"{label}: {done}", messages.SUCCESS)

    @admin.action(description="Approve selected requests", permissions=["decide"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        self._decide(request, queryset, ApprovalDecision.Verdict.APPROVE)

    @admin.action(description="Reject selected requests", permissions=["decide"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        self._decide(request, queryset, ApprovalDecision.Verdict.REJECT)


@admin.register(ApprovalDecision)
class ApprovalDecisionAdmin(ReadOnlyAdmin):
    """Each approver's approve or reject, as recorded (read-only)."""

    list_display = ["at", "user_label", "verdict", "request", "notes"]
    list_filter = ["verdict"]
    list_select_related = ["request"]
    search_fields = ["user_label", "notes", "request__agent__name"]
    date_hierarchy = "at"
    fields = ["request", "user_label", "verdict", "notes", "at"]
    readonly_fields = cast("list[str]", fields)  # names, no groups

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApprovalDecision]:
        visible = selectors.approval_visible_qs(actor=actor_from_request(request))
        return ApprovalDecision.objects.filter(request__in=visible.values("pk"))

    def has_view_permission(
        self, request: HttpRequest, obj: ApprovalDecision | None = None
    ) -> bool:
        return can(actor_from_request(request), "approvals.view_approvaldecision")
