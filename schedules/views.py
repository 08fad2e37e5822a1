"""The schedule's cards on the agent pages (``agents.sections``): the agent page's Schedule
card, with Pause and Resume, and the agents list's callout of schedules that need someone."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from agents.models import Agent
from agents.views import agent_or_404
from controlplane.access import Actor, actor_from_request, can
from controlplane.errors import ServiceError
from controlplane.http import HtmxHttpRequest
from schedules.selectors import schedule_view, schedules_needing_attention
from schedules.services import schedule_pause, schedule_resume


def schedule_context(actor: Actor, agent: Agent, **extra: str) -> dict[str, Any]:
    return {
        "agent": agent,
        "schedule": schedule_view(agent=agent),
        "schedule_can_change": can(actor, "agents.change_agent", agent),
        "can_view_runs": can(actor, "executions.view_execution"),
        **extra,
    }


@login_required
@require_POST
def agent_schedule(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Pause or resume the agent's schedule (the agent itself stays as it is)."""
    actor = actor_from_request(request)
    agent = agent_or_404(actor, name)
    action = request.POST.get("action")
    error, notice, status = "", "", 200
    try:
        if action == "pause":
            schedule_pause(actor=actor, agent=agent)
            notice = "Schedule paused: it does not fire until resumed."
        elif action == "resume":
            schedule_resume(actor=actor, agent=agent)
            notice = "Schedule resumed."
        else:
            error, status = "Choose pause or resume.", 400
    except ServiceError as exc:
        error, status = exc.message, exc.status_code
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, notice)
        return redirect("agents:detail", name=agent.name)
    context = schedule_context(actor, agent, schedule_error=error, schedule_notice=notice)
    return render(request, "schedules/_card.html", context, status=status)


def schedule_section(request: HttpRequest, actor: Actor, agent: Agent) -> dict[str, Any] | None:
    """The agent page's Schedule card, for an agent that has (or had) a cron schedule."""
    context = schedule_context(actor, agent)
    return context if context["schedule"] is not None else None


def attention_section(
    request: HttpRequest, actor: Actor, agents: QuerySet[Agent]
) -> dict[str, Any] | None:
    """The agents list's callout: schedules of these agents that missed fires, are overdue or
    paused themselves."""
    attention = schedules_needing_attention(agents=agents)
    return {"attention": attention} if attention else None
