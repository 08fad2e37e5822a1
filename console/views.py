"""The dashboard: seed 000's monitoring page, over the agents the viewer may see."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render

from approvals.selectors import approval_stats
from console import charts, failures
from console import dashboard as panels
from controlplane.access import actor_from_request, can
from controlplane.http import HtmxHttpRequest
from controlplane.views import render_page
from schedules.selectors import schedules_needing_attention

LIVE_PANELS = {
    "overview": "console/_dash_overview.html",
    "failures": "console/_dash_failures.html",
    "approvals": "approvals/_stats.html",
}


@login_required
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    """Seed 000's monitoring dashboard over the agents the user may see. A sort link swaps
    the performance table alone, and only its figures are computed for it; a live panel
    (``?panel=overview|failures|approvals``) likewise."""
    actor = actor_from_request(request)
    at = panels.window()
    may_see_approvals = can(actor, "approvals.view_approvalrequest")
    panel = request.GET.get("panel")
    if request.htmx and panel == "approvals":
        if not may_see_approvals:
            raise PermissionDenied
        return render(request, LIVE_PANELS[panel], {"stats": approval_stats(actor=actor)})
    seen = panels.scope(actor)
    if request.htmx and panel in LIVE_PANELS:
        context: dict[str, Any]
        if panel == "overview":
            context = {"overview": panels.dashboard_overview(scope=seen, at=at)}
        else:  # failures
            context = {"failures": failures.failure_groups(scope=seen, at=at), "window": at}
        return render(request, LIVE_PANELS[panel], context)
    sort = panels.performance_sort(request.GET.get("sort"))
    summed = panels.days_summed(scope=seen, at=at)
    cells = panels.window_cells(scope=seen, at=at, days=summed)  # the 30 days, for 5 panels
    performance = panels.agent_performance(scope=seen, at=at, sort=sort, cells=cells)
    context = {
        "window": at,
        "performance": performance,
        "columns": panels.performance_columns(sort),
    }
    if not request.htmx or request.htmx.history_restore_request:
        context |= {
            "overview": panels.dashboard_overview(scope=seen, at=at, cells=cells),
            "cost_by_agent": charts.hbars(panels.cost_by_agent(performance)),
            "daily_spend": charts.day_columns(panels.daily_spend(scope=seen, at=at, cells=cells)),
            "cost_by_provider": charts.hbars(
                panels.cost_by_provider(scope=seen, at=at, cells=cells)
            ),
            "failures": failures.failure_groups(scope=seen, at=at),
            "drops": failures.success_rate_drops(scope=seen, at=at, days=summed, cells=cells),
            "stats": approval_stats(actor=actor, agents=seen.agent_ids())
            if may_see_approvals
            else None,
            "attention": schedules_needing_attention(agents=[agent.pk for agent in seen.agents]),
        }
    return render_page(request, "console/dashboard.html", "console/_dash_performance.html", context)
