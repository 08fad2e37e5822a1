"""Console pages for runs: the list (filters) and one run's page (its timeline)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse

from controlplane.access import actor_from_request
from controlplane.errors import NotFound
from controlplane.views import paginate, render_page
from executions import selectors
from executions.filters import ExecutionFilter


@login_required
def execution_list(request: HttpRequest) -> HttpResponse:
    actor = actor_from_request(request)
    filterset = ExecutionFilter(request.GET, queryset=selectors.execution_list_for(actor=actor))
    executions = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    context = {"filter": filterset, "page": paginate(request, executions)}
    return render_page(request, "executions/list.html", "executions/_list_table.html", context)


@login_required
def execution_detail(request: HttpRequest, pk: str) -> HttpResponse:
    actor = actor_from_request(request)
    try:
        execution = selectors.execution_get(actor=actor, pk=pk)
    except (NotFound, ValueError):
        raise Http404 from None
    context = {
        "execution": execution,
        "steps": execution.steps.all(),
        "actions": execution.actions.all(),
        "logs": execution.logs.order_by("at", "id")[:500],
    }
    return render_page(request, "executions/detail.html", "executions/_detail.html", context)
