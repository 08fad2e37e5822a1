"""Console pages for runs: the list (the API's filters) and one run's page (its timeline),
with a Cancel button that calls ``executions.services.execution_cancel``."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from agents.selectors import agent_list
from controlplane.access import Actor, actor_from_request
from controlplane.errors import NotFound, ServiceError
from controlplane.views import paginate, render_page
from executions import selectors, services
from executions.filters import ExecutionFilter
from executions.models import Execution

FILTER_FIELDS = ExecutionFilter.Meta.fields


@login_required
def execution_list(request: HttpRequest) -> HttpResponse:
    actor = actor_from_request(request)
    filterset = ExecutionFilter(request.GET, queryset=selectors.execution_list_for(actor=actor))
    executions = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    context = {
        "filter": filterset,
        "page": paginate(request, executions),
        "filtered": any(request.GET.get(name) for name in FILTER_FIELDS),
        "agent_names": agent_list(actor=actor).values_list("name", flat=True),
        "sources": Execution.Source.choices,
        **_status_options(filterset.form["status"].value()),
    }
    return render_page(request, "executions/list.html", "executions/_list_table.html", context)


# Statuses asked for together (the dashboard's failure links): one option each.
STATUS_SETS = [("failed,timed_out", "failed or timed out")]


def _status_options(values: list[str] | None) -> dict[str, Any]:
    """The status select's options and the one selected: each status, the usual sets, and
    the set asked for in the URL (``?status=a,b``) if it is none of those, so that the
    select shows what the list is filtered by."""
    chosen = ",".join(sorted(set(values or [])))
    options = [*Execution.Status.choices, *STATUS_SETS]
    valid = set(Execution.Status.values)
    if chosen and chosen not in dict(options) and set(chosen.split(",")) <= valid:
        options.append((chosen, chosen.replace(",", " or ")))
    return {"statuses": options, "status_selected": chosen}


def _execution_or_404(actor: Actor, pk: Any) -> Execution:
    try:
        return selectors.execution_get(actor=actor, pk=pk)
    except (NotFound, ValueError):
        raise Http404 from None


def detail_context(actor: Actor, execution: Execution, **extra: Any) -> dict[str, Any]:
    may_cancel = services.execution_can_cancel(actor, execution)
    return {
        "execution": execution,
        "steps": execution.steps.all(),
        "actions": execution.actions.all(),
        "logs": execution.logs.order_by("at", "id")[:500],
        "can_cancel": may_cancel
        and not execution.is_terminal
        and not (execution.status == Execution.Status.RUNNING and execution.cancel_requested),
        "notice": "",
        "error": "",
        **extra,
    }


@login_required
def execution_detail(request: HttpRequest, pk: str) -> HttpResponse:
    actor = actor_from_request(request)
    execution = _execution_or_404(actor, pk)
    context = detail_context(actor, execution)
    return render_page(request, "executions/detail.html", "executions/_detail.html", context)


@login_required
@require_POST
def execution_cancel(request: HttpRequest, pk: str) -> HttpResponse:
    """Not started: cancelled at once. Running: asked to stop before its next step."""
    actor = actor_from_request(request)
    execution = _execution_or_404(actor, pk)
    status, notice, error = 200, "", ""
    try:
        execution = services.execution_cancel(actor=actor, execution=execution)
    except ServiceError as exc:
        status, error = exc.status_code, exc.message
    else:
        notice = (
            "Cancel requested: the run stops before its next step."
            if execution.status == Execution.Status.RUNNING
            else "The run is cancelled."
        )
    if request.htmx:
        execution = _execution_or_404(actor, pk)
        context = detail_context(actor, execution, notice=notice, error=error)
        return render(request, "executions/_detail.html", context, status=status)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, notice)
    return redirect("executions:detail", pk=execution.pk)
