"""Console pages for runs: the list (the API's filters) and one run's page (its timeline),
with a Cancel button that calls ``executions.services.execution_cancel``; and the agent
page's cards about runs (``agents.sections``): the Run form, generated from the version's
input schema, and the agent's recent runs."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from agents.models import Agent
from agents.selectors import agent_list
from agents.views import agent_or_404, agent_page_context
from controlplane.access import Actor, actor_from_request, can
from controlplane.errors import Invalid, NotFound, ServiceError
from controlplane.http import HtmxHttpRequest
from controlplane.views import paginate, render_page
from executions import selectors, services
from executions.filters import ExecutionFilter
from executions.forms import RunForm, input_form_class
from executions.models import Execution
from executions.trigger import TriggerRequest, execution_trigger

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


def _execution_or_404(actor: Actor, pk: UUID | str) -> Execution:
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
def execution_detail(request: HttpRequest, pk: UUID) -> HttpResponse:
    actor = actor_from_request(request)
    execution = _execution_or_404(actor, pk)
    context = detail_context(actor, execution)
    return render_page(request, "executions/detail.html", "executions/_detail.html", context)


@login_required
@require_POST
def execution_cancel(request: HtmxHttpRequest, pk: UUID) -> HttpResponse:
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


# --- the agent page's cards ------------------------------------------------------------------


def run_context(
    actor: Actor, agent: Agent, *, version: str | None = None, data: QueryDict | None = None
) -> dict[str, Any]:
    """The Run section: the versions this user may pick (production; staging too with the
    right to change the agent) and a form generated from the chosen one's input schema."""
    if not can(actor, "agents.execute_agent", agent) or agent.status == Agent.Status.ARCHIVED:
        return {"agent": agent, "can_run": False}
    choices = [
        (found, stage)
        for found, stage in (
            (agent.production_version, "production"),
            (
                agent.staging_version if can(actor, "agents.change_agent", agent) else None,
                "staging",
            ),
        )
        if found is not None
    ]
    chosen = next((found for found, _ in choices if found.version == version), None)
    if chosen is None and choices:
        chosen = choices[0][0]
    context: dict[str, Any] = {
        "agent": agent,
        "can_run": True,
        "run_version": chosen,
        "run_versions": [(found.version, stage) for found, stage in choices],
        "run_error": "",
    }
    if chosen is not None:
        form_class = input_form_class(chosen.config.get("input_schema"))
        context["input_form"] = form_class(data)
        context["run_form"] = RunForm(data, initial={"version": chosen.version})
    return context


def run_section(request: HttpRequest, actor: Actor, agent: Agent) -> dict[str, Any] | None:
    """The agent page's Run card (``?run_version=`` picks the version), for who may run it."""
    context = run_context(actor, agent, version=request.GET.get("run_version"))
    return context if context["can_run"] else None


def recent_runs_section(request: HttpRequest, actor: Actor, agent: Agent) -> dict[str, Any] | None:
    return recent_runs_context(actor, agent)


def recent_runs_context(actor: Actor, agent: Agent) -> dict[str, Any] | None:
    """The agent page's recent runs (live: ``console.consumers`` renders them again), for
    who may read runs."""
    if not can(actor, "executions.view_execution"):
        return None
    return {
        "agent": agent,
        "can_view_runs": True,
        "recent_runs": selectors.execution_list_for(actor=actor).filter(agent=agent)[:10],
    }


@login_required
@require_http_methods(["GET", "POST"])
def agent_run(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """The Run form: GET swaps in the form of another version (HTMX); POST triggers a run
    through ``executions.trigger.execution_trigger`` and goes to the new execution's page.
    A refusal (invalid input, agent not runnable) is shown in the form."""
    actor = actor_from_request(request)
    agent = agent_or_404(actor, name)
    if not can(actor, "agents.execute_agent", agent):
        raise PermissionDenied
    if request.method == "GET":
        version = request.GET.get("version") or None
        if not request.htmx:
            query = f"?{urlencode({'run_version': version})}" if version else ""
            return redirect(reverse("agents:detail", args=[agent.name]) + query + "#run")
        return render(
            request, "executions/_agent_run.html", run_context(actor, agent, version=version)
        )

    context = run_context(actor, agent, version=request.POST.get("version"), data=request.POST)
    status = 400
    run_form, input_form = context.get("run_form"), context.get("input_form")
    if run_form is None or input_form is None:
        context["run_error"], status = "This agent has no version to run.", 409
    elif run_form.is_valid():
        raw = run_form.cleaned_data["raw_input"]
        if raw is not None or input_form.is_valid():
            value = raw.value if raw is not None else input_form.to_input()
            try:
                result = execution_trigger(
                    TriggerRequest(
                        actor=actor,
                        agent=agent,
                        input=value,
                        source=Execution.Source.MANUAL,
                        version=run_form.cleaned_data["version"],
                    )
                )
            except Invalid as exc:
                problems = exc.details.get("validationErrors") or []
                if raw is not None:
                    for problem in problems:
                        run_form.add_error("raw_input", f"{problem['field']}: {problem['message']}")
                else:
                    input_form.add_input_errors(problems)
                if not problems:
                    context["run_error"] = exc.message
                status = exc.status_code
            except ServiceError as exc:
                context["run_error"], status = exc.message, exc.status_code
            else:
                execution = result.execution
                staging = " (staging run)" if execution.is_staging else ""
                messages.success(
                    request,
                    f"Run of {agent.name} {execution.agent_version.version} started{staging}.",
                )
                url = reverse("executions:detail", args=[execution.pk])
                if request.htmx:
                    response = HttpResponse(status=204)
                    response["HX-Redirect"] = url
                    return response
                return redirect(url)
    if request.htmx:
        return render(request, "executions/_agent_run.html", context, status=status)
    page = agent_page_context(request, actor, agent, given={"run": context})
    return render(request, "agents/detail.html", page, status=status)
