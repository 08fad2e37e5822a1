"""Runs in the Django admin: read-only (a status is never edited by hand), limited to the
runs of agents the user may see, with a cancel action that calls
``executions.services.execution_cancel``; for admins, the days the dashboard reads from their
sums; and the agent list's "Run selected agents" action (``agents.admin.agent_admin_actions``)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, TypedDict, cast

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from agents.admin import AgentAdmin, agent_admin_actions
from agents.models import Agent
from controlplane.access import actor_from_request, actor_is_admin, can
from controlplane.admin import ReadOnlyAdmin, ReadOnlyInline
from controlplane.errors import ServiceError
from executions import rollups, selectors, services
from executions.models import DayRollup, Execution, ExecutionAction, ExecutionStep, RolledUpDay
from executions.trigger import TriggerRequest, execution_trigger

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    # Generic in the stubs only: Django's ModelAdmin takes no type arguments at run time.
    ExecutionModelAdmin = admin.ModelAdmin[Execution]
else:
    ExecutionModelAdmin = admin.ModelAdmin


class ExecutionStepInline(ReadOnlyInline):
    model = ExecutionStep
    fields = [
        "index",
        "name",
        "kind",
        "status",
        "attempt",
        "latency_ms",
        "provider",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "started_at",
    ]
    readonly_fields = cast("list[str]", fields)  # names, no groups


class ExecutionActionInline(ReadOnlyInline):
    model = ExecutionAction
    fields = [
        "action",
        "target",
        "method",
        "status",
        "approved",
        "auto_approved",
        "attempts",
        "error",
        "started_at",
        "finished_at",
    ]
    readonly_fields = cast("list[str]", fields)  # names, no groups


@admin.action(description="Run selected agents (empty input)", permissions=["execute"])
def run_selected(modeladmin: AgentAdmin, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
    """One manual run of each agent's production version, with ``{}`` as the input."""
    actor = actor_from_request(request)
    for agent in queryset:
        try:
            result = execution_trigger(
                TriggerRequest(actor=actor, agent=agent, input={}, source=Execution.Source.MANUAL)
            )
        except ServiceError as exc:
            modeladmin.message_user(request, f"{agent.name}: {exc.message}", messages.ERROR)
            continue
        execution = result.execution
        modeladmin.message_user(
            request,
            format_html(
                '{}: run <a href="{}">{}</a> of {} is {}.',
                agent.name,
                reverse("admin:executions_execution_change", args=[execution.pk]),
                str(execution.pk)[:8],
                execution.agent_version.version,
                execution.status,
            ),
            messages.SUCCESS,
        )


agent_admin_actions.register(run_selected)


@admin.register(Execution)
class ExecutionAdmin(ExecutionModelAdmin):
    list_display = [
        "id",
        "agent",
        "version",
        "status",
        "trigger_source",
        "is_staging",
        "total_tokens",
        "estimated_cost_usd",
        "created_at",
    ]
    list_filter = [
        "status",
        "trigger_source",
        "is_staging",
        ("agent", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["agent", "agent_version"]
    search_fields = ["agent__name"]
    search_help_text = "An execution id, or (part of) an agent's name."
    date_hierarchy = "created_at"
    inlines = [ExecutionStepInline, ExecutionActionInline]
    actions = ["cancel_selected"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "agent",
                    "agent_version",
                    "is_staging",
                    "status",
                    "cancel_requested",
                    "awaiting_report",
                    "trigger_source",
                    "trigger_user",
                    "attempt",
                    "worker",
                    "parent",
                ]
            },
        ),
        ("Input and output", {"fields": ["input", "output", "output_summary"]}),
        ("Error", {"fields": ["error_type", "error_message"]}),
        (
            "Usage",
            {
                "fields": [
                    "llm_provider",
                    "llm_model",
                    "prompt_tokens",
                    "completion_tokens",
                    "total_tokens",
                    "estimated_cost_usd",
                    "total_latency_ms",
                ]
            },
        ),
        (
            "Times",
            {
                "fields": [
                    "created_at",
                    "enqueued_at",
                    "not_before",
                    "started_at",
                    "heartbeat_at",
                    "deadline_at",
                    "completed_at",
                ]
            },
        ),
        (
            "Trace",
            {
                "classes": ["collapse"],
                "fields": ["policy_trace", "idempotency_key", "trace_id", "checkpoint"],
            },
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Execution]:
        return selectors.execution_list_for(actor=actor_from_request(request))

    def get_readonly_fields(self, request: HttpRequest, obj: Execution | None = None) -> list[str]:
        return flatten_fieldsets(self.fieldsets)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Execution], search_term: str
    ) -> tuple[QuerySet[Execution], bool]:
        # An id is matched exactly, as a UUID: the text form of a UUID column differs between
        # databases (SQLite keeps it without dashes), so a text search on it would not work.
        try:
            execution_id = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(Q(pk=execution_id) | Q(agent__pk=execution_id)), False

    @admin.display(description="version", ordering="agent_version__version")
    def version(self, obj: Execution) -> str:
        return obj.agent_version.version

    def has_view_permission(self, request: HttpRequest, obj: Execution | None = None) -> bool:
        # Which runs: the queryset (the agents the user may see); whether runs at all: the role.
        return can(actor_from_request(request), "executions.view_execution")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs start through a trigger: the agents' "Run" action, the console, API

    def has_change_permission(self, request: HttpRequest, obj: Execution | None = None) -> bool:
        return False  # nobody edits a run (its status least of all) by hand

    def has_delete_permission(self, request: HttpRequest, obj: Execution | None = None) -> bool:
        return False  # runs are the record of what happened

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return can(actor_from_request(request), "executions.cancel_execution")

    @admin.action(description="Cancel selected runs", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        actor = actor_from_request(request)
        for execution in queryset.select_related("agent"):
            label = f"{execution.agent.name} run {str(execution.pk)[:8]}"
            try:
                done = services.execution_cancel(actor=actor, execution=execution)
            except ServiceError as exc:
                self.message_user(request, f"{label}: {exc.message}", messages.ERROR)
                continue
            if done.status == Execution.Status.CANCELLED:
                self.message_user(request, f"{label}: cancelled.", messages.SUCCESS)
            else:
                self.message_user(
                    request,
                    f"{label}: cancel requested; it stops before its next step.",
                    messages.SUCCESS,
                )


class DaySums(TypedDict):
    """What the summed days' list adds to each day (None: the day has no rows)."""

    row_count: int | None
    run_count: int | None


@admin.register(RolledUpDay)
class RolledUpDayAdmin(ReadOnlyAdmin):
    """The days whose runs the dashboard reads from their sums (``executions.rollups``), for
    admins; "Sum again" drops a day's sums, after runs were loaded with back-dated
    ``created_at`` values, say."""

    list_display = ["day", "at", "rows", "runs"]
    date_hierarchy = "day"
    ordering = ["-day"]
    actions = ["sum_again"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return actor_is_admin(actor_from_request(request))

    def has_view_permission(self, request: HttpRequest, obj: RolledUpDay | None = None) -> bool:
        return actor_is_admin(actor_from_request(request))

    def get_queryset(self, request: HttpRequest) -> QuerySet[RolledUpDay]:
        sums = DayRollup.objects.filter(day=OuterRef("day")).order_by().values("day")
        days: QuerySet[RolledUpDay] = super().get_queryset(request)
        return days.annotate(
            row_count=Subquery(sums.annotate(n=Count("pk")).values("n")),
            run_count=Subquery(sums.annotate(n=Sum("runs")).values("n")),
        )

    @admin.display(description="rows (agent and provider)")
    def rows(self, obj: WithAnnotations[RolledUpDay, DaySums]) -> int:
        return obj.row_count or 0

    @admin.display(description="runs")
    def runs(self, obj: WithAnnotations[RolledUpDay, DaySums]) -> int:
        return obj.run_count or 0

    @admin.action(description="Sum again (drop these days' sums)")
    def sum_again(self, request: HttpRequest, queryset: QuerySet[RolledUpDay]) -> None:
        try:
            forgotten = rollups.days_forget(
                actor=actor_from_request(request), days=queryset.values_list("day", flat=True)
            )
        except ServiceError as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        self.message_user(
            request,
            f"Dropped the sums of {forgotten} day(s); the next page to need them sums them again.",
        )
