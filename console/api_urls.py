"""The API's URLs (``/api/v1/``): the apps' viewsets and views, under one router."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from agents.api.views import AgentViewSet
from approvals.api.views import ApprovalViewSet
from controlplane.api.views import AuditEventViewSet
from controlplane.health import LivenessView, ReadinessView
from executions.api.events import EventView
from executions.api.views import AgentExecuteView, ExecutionViewSet
from executions.api.webhooks import AgentWebhookView
from policies.api.views import PolicyViewSet
from schedules.api import AgentSchedulePauseView, AgentScheduleResumeView, AgentScheduleView

router = SimpleRouter(trailing_slash=False)
router.register("agents", AgentViewSet, basename="agent")
router.register("approvals", ApprovalViewSet, basename="approval")
router.register("audit", AuditEventViewSet, basename="audit")
router.register("executions", ExecutionViewSet, basename="execution")
router.register("policies", PolicyViewSet, basename="policy")

app_name = "api"
urlpatterns = [
    path("health", LivenessView.as_view(), name="health"),
    path("health/ready", ReadinessView.as_view(), name="health-ready"),
    path("hooks/agents/<str:ref>", AgentWebhookView.as_view(), name="agent-webhook"),
    path("events", EventView.as_view(), name="events"),
    # Other apps' endpoints under an agent (the router's agent-* names, kept).
    path("agents/<str:ref>/execute", AgentExecuteView.as_view(), name="agent-execute"),
    path("agents/<str:ref>/schedule", AgentScheduleView.as_view(), name="agent-schedule"),
    path(
        "agents/<str:ref>/schedule/pause",
        AgentSchedulePauseView.as_view(),
        name="agent-schedule-pause",
    ),
    path(
        "agents/<str:ref>/schedule/resume",
        AgentScheduleResumeView.as_view(),
        name="agent-schedule-resume",
    ),
    *router.urls,
]
