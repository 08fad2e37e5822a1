"""Console pages for the registry. Each view returns the full page, or the partial HTMX
asked for (``request.htmx``); every write goes through ``agents.services``. The cards other
apps add to these pages (the Run form, recent runs, the schedule) are ``agents.sections``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.exceptions import ValidationError

from agents import selectors, services
from agents.api.serializers import AgentCreateSerializer
from agents.filters import AgentFilter
from agents.forms import AgentRegisterForm, VersionCreateForm, VersionEditForm
from agents.models import Agent, AgentVersion
from agents.sections import agent_list_sections, agent_page_sections, render_sections
from agents.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    agent_webhook_secret_rotate,
    webhook_instructions,
)
from controlplane.access import Actor, actor_from_request, can
from controlplane.errors import NotFound, ServiceError, flatten_errors
from controlplane.http import HtmxHttpRequest
from controlplane.roles import Role
from controlplane.views import paginate, render_page

if TYPE_CHECKING:
    from django.contrib.auth.models import User


ACTIONS = ("activate", "pause", "deprecate", "archive", "promote", "rollback")


def agent_or_404(actor: Actor, name: str) -> Agent:
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
        "sections": render_sections(
            agent_list_sections, request, actor, selectors.agent_list(actor=actor)
        ),
    }
    return render_page(request, "agents/list.html", "agents/_list_table.html", context)


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


def agent_page_context(
    request: HttpRequest,
    actor: Actor,
    agent: Agent,
    *,
    given: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The agent page's context; ``given``: a card's context its own view made (a Run form
    with its errors) to show instead of a fresh one."""
    context = _panel_context(actor, agent)
    production = agent.production_version
    context["production_config"] = (
        json.dumps(production.config, indent=2, sort_keys=True) if production else ""
    )
    versions = context["versions"]
    if len(versions) >= 2:
        context["diff_from"], context["diff_to"] = versions[1].version, versions[0].version
    context["sections"] = render_sections(agent_page_sections, request, actor, agent, given=given)
    context.update(_webhook_context(request, actor, agent))
    return context


@login_required
def agent_detail(request: HttpRequest, name: str) -> HttpResponse:
    actor = actor_from_request(request)
    agent = agent_or_404(actor, name)
    context = agent_page_context(request, actor, agent)
    return render_page(request, "agents/detail.html", "agents/_panel.html", context)


@login_required
@require_POST
def agent_action(request: HtmxHttpRequest, name: str, action: str) -> HttpResponse:
    actor = actor_from_request(request)
    agent = agent_or_404(actor, name)
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
        agent = agent_or_404(actor, name)
        context = _panel_context(actor, agent, error=error)
        context["notice"] = "" if error else done
        response = render(request, "agents/_panel.html", context, status=status)
        # A promotion or a lifecycle move changes what other cards offer (the Run form's
        # versions): swap them too.
        for html in render_sections(agent_page_sections, request, actor, agent, after_action=True):
            response.content += html.encode()
        return response
    if error:
        messages.error(request, error)
    else:
        messages.success(request, done)
    return redirect("agents:detail", name=agent.name)


@login_required
def agent_diff(request: HttpRequest, name: str) -> HttpResponse:
    actor = actor_from_request(request)
    agent = agent_or_404(actor, name)
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
    user = cast("User", request.user)  # login_required: signed in
    teams = sorted(user.groups.exclude(name__in=Role.values).values_list("name", flat=True))
    form = AgentRegisterForm(request.POST or None, teams=teams, initial={"owner_email": user.email})
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
    agent = agent_or_404(actor, name)
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
    agent = agent_or_404(actor, name)
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
    refusal = ""
    if request.method == "POST" and not can(actor, "agents.change_agent", agent):
        # Refused before what was sent is read: who may not change the agent hears that.
        refusal, status = "You do not have permission to perform this action.", 403
        form = VersionEditForm(initial=initial)
    else:
        form = VersionEditForm(request.POST or None, initial=initial)
        status = 400 if request.method == "POST" else 200
    if request.method == "POST" and not refusal and form.is_valid():
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
    context = {
        "agent": agent,
        "version": found,
        "form": form,
        "editable": editable,
        "refusal": refusal,
    }
    return render(request, "agents/version_edit.html", context, status=status)


@login_required
@require_POST
def agent_webhook_rotate(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """A new webhook secret, shown once (never cached), with what a sender needs."""
    actor = actor_from_request(request)
    agent = agent_or_404(actor, name)
    try:
        secret = agent_webhook_secret_rotate(actor=actor, agent=agent)
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
        context = agent_page_context(request, actor, agent)
        context.update(_webhook_context(request, actor, agent, secret))
        response = render(request, "agents/detail.html", context)
    # The secret is shown once: no cache, back button or proxy may show it again.
    add_never_cache_headers(response)
    return response
