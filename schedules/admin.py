"""Schedules in the Django admin: read-only (a schedule follows its agent's production
version and status, kept by ``schedules.services.schedule_sync``), limited to the agents the
user may see, with Pause and Resume actions that call the services, and each schedule's
fires in their own read-only list."""

from __future__ import annotations

from typing import cast

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from agents.selectors import agent_visible_qs
from controlplane import cron
from controlplane.access import actor_from_request, can
from controlplane.admin import ReadOnlyAdmin
from controlplane.errors import ServiceError
from schedules import services
from schedules.models import Schedule, ScheduleFire


@admin.register(Schedule)
class ScheduleAdmin(ReadOnlyAdmin):
    """Added by a cron trigger in a production version, changed by promoting another or by
    the Pause / Resume actions, removed by deprecating or archiving the agent."""

    list_display = [
        "agent",
        "expression",
        "timezone",
        "in_words",
        "active",
        "paused_at",
        "next_fire_at",
        "consecutive_failures",
    ]
    list_filter = ["active", "overlap", "catch_up", "timezone"]
    list_select_related = ["agent"]
    search_fields = ["agent__name", "expression", "timezone"]
    actions = ["pause_selected", "resume_selected"]
    fields = [
        "agent",
        "version",
        "expression",
        "timezone",
        "in_words",
        "input",
        "overlap",
        "catch_up",
        "jitter_seconds",
        "pause_after_failures",
        "active",
        "cursor",
        "next_fire_at",
        "due_at",
        "consecutive_failures",
        "paused_at",
        "paused_reason",
        "periodic_task",
        "fires",
        "created_at",
        "updated_at",
    ]
    readonly_fields = cast("list[str]", fields)  # names, no groups

    @admin.display(description="fires")
    def fires(self, obj: Schedule) -> str:
        url = reverse("admin:schedules_schedulefire_changelist") + f"?agent__id__exact={obj.pk}"
        return format_html(
            '<a href="{}">{} recorded fires</a>', url, obj.agent.schedule_fires.count()
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Schedule]:
        visible = agent_visible_qs(actor=actor_from_request(request))
        return super().get_queryset(request).filter(agent__in=visible.values("pk"))

    @admin.display(description="in words")
    def in_words(self, obj: Schedule) -> str:
        return cron.describe(cron.parse(obj.expression), obj.timezone)

    def has_view_permission(self, request: HttpRequest, obj: Schedule | None = None) -> bool:
        return can(actor_from_request(request), "agents.view_agent")

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return can(actor_from_request(request), "agents.change_agent")

    def _each(self, request: HttpRequest, queryset: QuerySet[Schedule], verb: str) -> None:
        actor = actor_from_request(request)
        act = services.schedule_pause if verb == "pause" else services.schedule_resume
        for schedule in queryset.select_related("agent"):
            try:
                act(actor=actor, agent=schedule.agent)
            except ServiceError as exc:
                self.message_user(request, f"{schedule.agent.name}: {exc.message}", messages.ERROR)
                continue
            self.message_user(request, f"{schedule.agent.name}: {verb}d.", messages.SUCCESS)

    @admin.action(description="Pause selected schedules", permissions=["pause"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._each(request, queryset, "pause")

    @admin.action(description="Resume selected schedules", permissions=["pause"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._each(request, queryset, "resume")


@admin.register(ScheduleFire)
class ScheduleFireAdmin(ReadOnlyAdmin):
    """What became of each fire (read-only): the run it made, or why none."""

    list_display = ["fire_at", "agent", "outcome", "execution", "missed", "late_seconds", "detail"]
    list_filter = ["outcome", "agent"]
    list_select_related = ["agent", "execution"]
    search_fields = ["agent__name", "detail"]
    date_hierarchy = "fire_at"
    fields = [*cast("list[str]", list_display), "handled_at"]  # names, no callables
    readonly_fields = cast("list[str]", fields)  # names, no groups

    def get_queryset(self, request: HttpRequest) -> QuerySet[ScheduleFire]:
        visible = agent_visible_qs(actor=actor_from_request(request))
        return super().get_queryset(request).filter(agent__in=visible.values("pk"))

    def has_view_permission(self, request: HttpRequest, obj: ScheduleFire | None = None) -> bool:
        return can(actor_from_request(request), "agents.view_agent")
