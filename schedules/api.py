"""The schedule of an agent in the API: ``GET /api/v1/agents/{ref}/schedule`` and its
``pause`` / ``resume`` actions, under the agent registry's URL."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.api.views import REF
from agents.models import Agent
from agents.selectors import agent_get
from controlplane.access import actor_from_request
from controlplane.errors import NotFound
from controlplane.serializers import StrictCharField, StrictSerializer
from schedules import services
from schedules.models import Schedule, ScheduleFire
from schedules.selectors import ScheduleView, schedule_view


class ScheduleFireSerializer(serializers.ModelSerializer[ScheduleFire]):
    execution_id = serializers.UUIDField(allow_null=True, read_only=True)
    execution_status = serializers.CharField(
        source="execution.status", allow_null=True, default=None, read_only=True
    )
    execution_url = serializers.SerializerMethodField()

    class Meta:
        model = ScheduleFire
        fields = [
            "fire_at",
            "handled_at",
            "outcome",
            "execution_id",
            "execution_status",
            "execution_url",
            "missed",
            "late_seconds",
            "detail",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_execution_url(self, obj: ScheduleFire) -> str | None:
        if obj.execution_id is None:
            return None
        return reverse("api:execution-detail", args=[obj.execution_id])


class ScheduleSerializer(serializers.Serializer[ScheduleView]):
    """An agent's cron schedule: what it says, in words, what comes next, what happened."""

    expression = serializers.CharField(source="schedule.expression")
    timezone = serializers.CharField(source="schedule.timezone")
    description = serializers.CharField(help_text='e.g. "At 09:00, Monday through Friday, UTC"')
    state = serializers.ChoiceField(
        choices=["active", "overdue", "paused", "off", "removed"],
        help_text="overdue: a fire is more than SCHEDULE_MISSED_GRACE_SECONDS late (is beat "
        "running?); paused: after failed runs, or by hand; off: the agent is paused; "
        "removed: the agent or its production version no longer runs on this schedule.",
    )
    version = serializers.CharField(
        source="schedule.version.version", allow_null=True, default=None
    )
    overlap = serializers.ChoiceField(source="schedule.overlap", choices=Schedule.Overlap.choices)
    catch_up = serializers.ChoiceField(source="schedule.catch_up", choices=Schedule.CatchUp.choices)
    jitter_seconds = serializers.IntegerField(source="schedule.jitter_seconds")
    pause_after_failures = serializers.IntegerField(source="schedule.pause_after_failures")
    consecutive_failures = serializers.IntegerField(source="schedule.consecutive_failures")
    input = serializers.JSONField(source="schedule.input")
    paused_at = serializers.DateTimeField(source="schedule.paused_at", allow_null=True)
    paused_reason = serializers.CharField(source="schedule.paused_reason")
    overdue_since = serializers.DateTimeField(allow_null=True)
    next_fires = serializers.ListField(child=serializers.DateTimeField())
    last_fires = ScheduleFireSerializer(many=True)


class SchedulePauseSerializer(StrictSerializer):
    reason = StrictCharField(max_length=500, required=False, allow_blank=True, default="")


# Under the agent registry's URL (/agents/{ref}/schedule): their docstrings are the API's
# description of the resource.


def _schedule(agent: Agent) -> Response:
    view = schedule_view(agent=agent)
    if view is None:
        raise NotFound(f"Agent {agent.name!r} has no cron schedule.", code="no_schedule")
    return Response(ScheduleSerializer(view).data)


class AgentScheduleView(APIView):
    """The agent registry (seed 000, "Agent Management")."""

    @extend_schema(
        summary="The agent's cron schedule: in words, next fires, last fires with their runs",
        parameters=[REF],
        responses=ScheduleSerializer,
        operation_id="agents_schedule_retrieve",
    )
    def get(self, request: Request, ref: str) -> Response:
        return _schedule(agent_get(actor=actor_from_request(request), ref=ref))


class AgentSchedulePauseView(APIView):
    """The agent registry (seed 000, "Agent Management")."""

    @extend_schema(
        summary="Pause the agent's schedule (the agent stays active for other triggers)",
        parameters=[REF],
        request=SchedulePauseSerializer,
        responses=ScheduleSerializer,
        operation_id="agents_schedule_pause_create",
    )
    def post(self, request: Request, ref: str) -> Response:
        actor = actor_from_request(request)
        agent = agent_get(actor=actor, ref=ref, perm="agents.change_agent")
        body = SchedulePauseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.schedule_pause(actor=actor, agent=agent, reason=body.validated_data["reason"])
        return _schedule(agent)


class AgentScheduleResumeView(APIView):
    """The agent registry (seed 000, "Agent Management")."""

    @extend_schema(
        summary="Resume a paused schedule (fires while it was paused are not caught up)",
        parameters=[REF],
        request=None,
        responses=ScheduleSerializer,
        operation_id="agents_schedule_resume_create",
    )
    def post(self, request: Request, ref: str) -> Response:
        actor = actor_from_request(request)
        agent = agent_get(actor=actor, ref=ref, perm="agents.change_agent")
        services.schedule_resume(actor=actor, agent=agent)
        return _schedule(agent)
