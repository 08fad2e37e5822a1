"""Console pages for the registry. Each view returns the full page, or the partial HTMX
asked for (``request.htmx``); every write goes through ``agents.services``."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.exceptions import ValidationError

from agents import selectors, services
from agents.api.serializers import AgentCreateSerializer
from agents.filters import AgentFilter
from agents.forms import AgentRegisterForm, VersionCreateForm, VersionEditForm
from agents.models import Agent, AgentVersion
from agents.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, webhook_instructions
from controlplane.access import Actor, actor_from_request, can
from controlplane.errors import Invalid, NotFound, ServiceError, flatten_errors
from controlplane.roles import Role
from controlplane.views import paginate, render_page
from executions.forms import RunForm, input_form_class
from executions.models import Execution
from executions.selectors import execution_list_for
from executions.trigger import TriggerRequest, execution_trigger
from schedules.selectors import schedule_view, schedules_needing_attention
from schedules.services import schedule_pause, schedule_resume

ACTIONS = ("activate", "pause", "deprecate", "archive", "promote", "rollback")


def _agent_or_404(actor: Actor, name: str) -> Agent:
    try:
        return selectors.agent_get(actor=actor, ref=name)
    except NotFound:
        raise Http404(f"No agent {name!r}.") from None


def _panel_context(actor: Actor, agent: Agent, error: str = "") -> dict[str, Any]:
    versions = list(selectors.agent_versions(agent=agent))
    production = agent.production_version
    return {
        "agent": agent,
        "versions": versions,
        "can_change": can(actor, "agents.change_agent", agent),
        "can_delete": can(actor, "agents.delete_agent", agent),
        "can_rollback": bool(production and production.previous_production_id),
        "transitions": [
            name
            for name in ("activate", "pause", "deprecate")
            if agent.status in Agent.TRANSITIONS[name][0]
        ],
        "error": error,
    }


@login_required
def agent_list(request: HttpRequest) -> HttpResponse:
    actor = actor_from_request(request)
    filterset = AgentFilter(request.GET, queryset=selectors.agent_list(actor=actor))
    agents = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    context = {
        "filter": filterset,
        "page": paginate(request, agents),
        "can_view": can(actor, "agents.view_agent"),
        # Schedules that missed fires or paused themselves: the console's alert list.
        "attention": schedules_needing_attention(agents=selectors.agent_list(actor=actor)),
    }
    return render_page(request, "agents/list.html", "agents/_list_table.html", context)


def _run_context(
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


def _webhook_context(
    request: HttpRequest, actor: Actor, agent: Agent, secret: str | None = None
) -> dict[str, Any]:
    return {
        "can_rotate": can(actor, "agents.change_agent", agent)
        and agent.status != Agent.Status.ARCHIVED,
        "has_secret": bool(agent.webhook_secret_ciphertext),
        "webhook_url": request.build_absolute_uri(reverse("api:agent-webhook", args=[agent.pk])),
        "timestamp_header": TIMESTAMP_HEADER,
        "signature_header": SIGNATURE_HEADER,
        "instructions": webhook_instructions(request, agent, secret) if secret else None,
        "webhook_error": "",
    }


def _detail_context(request: HttpRequest, actor: Actor, agent: Agent, **run: Any) -> dict[str, Any]:
    context = _panel_context(actor, agent)
    production = agent.production_version
    context["production_config"] = (
        json.dumps(production.config, indent=2, sort_keys=True) if production else ""
    )
    versions = context["versions"]
    if len(versions) >= 2:
        context["diff_from"], context["diff_to"] = versions[1].version, versions[0].version
    context.update(_run_context(actor, agent, **run))
    context.update(_webhook_context(request, actor, agent))
    context.update(_schedule_context(actor, agent))
    context["can_view_runs"] = can(actor, "executions.view_execution")
    if context["can_view_runs"]:
        context["recent_runs"] = execution_list_for(actor=actor).filter(agent=agent)[:10]
    return context


@login_required
def agent_detail(request: HttpRequest, name: str) -> HttpResponse:
    actor = actor_from_request(request)
    agent = _agent_or_404(actor, name)
    context = _detail_context(request, actor, agent, version=request.GET.get("run_version"))
    return render_page(request, "agents/detail.html", "agents/_panel.html", context)


def _schedule_context(actor: Actor, agent: Agent, **extra: str) -> dict[str, Any]:
    return {
        "agent": agent,
        "schedule": schedule_view(agent=agent),
        "schedule_can_change": can(actor, "agents.change_agent", agent),
        "can_view_runs": can(actor, "executions.view_execution"),
        **extra,
    }


@login_required
@require_POST
def agent_schedule(request: HttpRequest, name: str) -> HttpResponse:
    """Pause or resume the agent's schedule (the agent itself stays as it is)."""
    actor = actor_from_request(request)
    agent = _agent_or_404(actor, name)
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
    context = _schedule_context(actor, agent, schedule_error=error, schedule_notice=notice)
    return render(request, "schedules/_card.html", context, status=status)


@login_required
@require_POST
def agent_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    actor = actor_from_request(request)
    agent = _agent_or_404(actor, name)
    if action not in ACTIONS:
        raise Http404(f"No action {action!r}.")
    status = 200
    error = ""
    try:
        if action == "promote":
            version = services.agent_version_promote(
                actor=actor, agent=agent, version=request.POST.get("version") or None
            )
            done = f"Version {version.version} is now {version.stage}."
        elif action == "rollback":
            version = services.agent_rollback(actor=actor, agent=agent)
            done = f"Rolled back: version {version.version} is in production again."
        else:
            agent = services.agent_transition(actor=actor, agent=agent, action=action)
            done = f"Agent {agent.name} is now {agent.status}."
    except ServiceError as exc:
        error, status = exc.message, exc.status_code
    if action == "archive" and not error:
        messages.success(request, done)
        if request.htmx:
            response = HttpResponse(status=204)
            response["HX-Redirect"] = reverse("agents:list")
            return response
        return redirect("agents:list")
    if request.htmx:
        agent = _agent_or_404(actor, name)
        context = _panel_context(actor, agent, error=error)
        context["notice"] = "" if error else done
        response = render(request, "agents/_panel.html", context, status=status)
        # A promotion or a lifecycle move changes what the Run section offers: swap it too.
        run = _run_context(actor, agent)
        if run["can_run"]:
            context = {**run, "oob": True}
            response.content += render_to_string("agents/_run.html", context, request).encode()
        return response
    if error:
        messages.error(request, error)
    else:
        messages.success(request, done)
    return redirect("agents:detail", name=agent.name)


@login_required
def agent_diff(request: HttpRequest, name: str) -> HttpResponse:
    actor = actor_from_request(request)
    agent = _agent_or_404(actor, name)
    older_ref, newer_ref = request.GET.get("from", ""), request.GET.get("to", "")
    context: dict[str, Any] = {"agent": agent, "diff_from": older_ref, "diff_to": newer_ref}
    status = 200
    if not (older_ref and newer_ref):
        context["error"], status = "Choose two versions to compare: from and to.", 400
    else:
        try:
            older = selectors.agent_version_get(agent=agent, version=older_ref)
            newer = selectors.agent_version_get(agent=agent, version=newer_ref)
            context["diff"] = selectors.agent_version_diff(older=older, newer=newer)
        except NotFound as exc:
            context["error"], status = exc.message, 404
    return render_page(request, "agents/diff.html", "agents/_diff.html", context, status)


@login_required
@require_http_methods(["GET", "POST"])
def agent_new(request: HttpRequest) -> HttpResponse:
    """Register an agent with its first (draft) version, without the admin."""
    actor = actor_from_request(request)
    if not can(actor, "agents.add_agent"):
        raise PermissionDenied
    teams = sorted(request.user.groups.exclude(name__in=Role.values).values_list("name", flat=True))
    form = AgentRegisterForm(
        request.POST or None, teams=teams, initial={"owner_email": request.user.email}
    )
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            serializer = AgentCreateSerializer(data=form.payload())
            if not serializer.is_valid():
                for item in flatten_errors(serializer.errors):
                    field = item["field"] if item["field"] in form.fields else "config"
                    prefix = "" if field == item["field"] else f"{item['field']}: "
                    form.add_error(field, f"{prefix}{item['message']}")
            else:
                try:
                    agent, _ = services.agent_create(actor=actor, data=serializer.validated_data)
                except ServiceError as exc:
                    form.add_error(None, exc.message)
                    status = exc.status_code
                else:
                    messages.success(
                        request,
                        f"Agent {agent.name} registered with draft {form.cleaned_data['version']}"
                        ": promote it twice (staging, production), then activate it.",
                    )
                    return redirect("agents:detail", name=agent.name)
    return render(request, "agents/new.html", {"form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def version_new(request: HttpRequest, name: str) -> HttpResponse:
    actor = actor_from_request(request)
    agent = _agent_or_404(actor, name)
    if not can(actor, "agents.change_agent", agent):
        raise PermissionDenied
    form = VersionCreateForm(request.POST or None, agent=agent)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                version = services.agent_version_create(
                    actor=actor,
                    agent=agent,
                    version=form.cleaned_data["version"],
                    clone_from=form.cleaned_data["clone_from"],
                    changelog=form.cleaned_data["changelog"],
                )
            except ServiceError as exc:
                form.add_error(None, exc.message)
                status = exc.status_code
            else:
                messages.success(request, f"Draft {version.version} created.")
                return redirect("agents:version-edit", name=agent.name, version=version.version)
    return render(request, "agents/version_new.html", {"agent": agent, "form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def version_edit(request: HttpRequest, name: str, version: str) -> HttpResponse:
    actor = actor_from_request(request)
    agent = _agent_or_404(actor, name)
    try:
        found = selectors.agent_version_get(agent=agent, version=version)
    except NotFound:
        raise Http404 from None
    editable = (
        found.stage == AgentVersion.Stage.DRAFT
        and agent.status != Agent.Status.ARCHIVED
        and can(actor, "agents.change_agent", agent)
    )
    initial = {
        "config": json.dumps(found.config, indent=2, sort_keys=True),
        "changelog": found.changelog,
    }
    form = VersionEditForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                services.agent_version_update(
                    actor=actor,
                    version=found,
                    config=form.cleaned_data["config"],
                    changelog=form.cleaned_data["changelog"],
                )
            except ValidationError as exc:
                for item in flatten_errors(exc.detail):
                    form.add_error("config", f"{item['field']}: {item['message']}")
            except ServiceError as exc:
                form.add_error(None, exc.message)
                status = exc.status_code
            else:
                messages.success(request, f"Draft {found.version} saved.")
                return redirect("agents:detail", name=agent.name)
    context = {"agent": agent, "version": found, "form": form, "editable": editable}
    return render(request, "agents/version_edit.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def agent_run(request: HttpRequest, name: str) -> HttpResponse:
    """The Run form: GET swaps in the form of another version (HTMX); POST triggers a run
    through ``executions.services.execution_trigger`` and goes to the new execution's page.
    A refusal (invalid input, agent not runnable) is shown in the form."""
    actor = actor_from_request(request)
    agent = _agent_or_404(actor, name)
    if not can(actor, "agents.execute_agent", agent):
        raise PermissionDenied
    if request.method == "GET":
        version = request.GET.get("version") or None
        if not request.htmx:
            query = f"?{urlencode({'run_version': version})}" if version else ""
            return redirect(reverse("agents:detail", args=[agent.name]) + query + "#run")
        return render(request, "agents/_run.html", _run_context(actor, agent, version=version))

    context = _run_context(actor, agent, version=request.POST.get("version"), data=request.POST)
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
        return render(request, "agents/_run.html", context, status=status)
    page = _detail_context(request, actor, agent)
    page.update(context)
    return render(request, "agents/detail.html", page, status=status)


@login_required
@require_POST
def agent_webhook_rotate(request: HttpRequest, name: str) -> HttpResponse:
    """A new webhook secret, shown once (never cached), with what a sender needs."""
    actor = actor_from_request(request)
    agent = _agent_or_404(actor, name)
    try:
        secret = services.agent_webhook_secret_rotate(actor=actor, agent=agent)
    except ServiceError as exc:
        if request.htmx:
            context = {**_webhook_context(request, actor, agent), "agent": agent}
            context["webhook_error"] = exc.message
            return render(request, "agents/_webhook.html", context, status=exc.status_code)
        messages.error(request, exc.message)
        return redirect("agents:detail", name=agent.name)
    agent.refresh_from_db()
    if request.htmx:
        context = {**_webhook_context(request, actor, agent, secret), "agent": agent}
        response = render(request, "agents/_webhook.html", context)
    else:
        context = _detail_context(request, actor, agent)
        context.update(_webhook_context(request, actor, agent, secret))
        response = render(request, "agents/detail.html", context)
    # The secret is shown once: no cache, back button or proxy may show it again.
    add_never_cache_headers(response)
    return response
