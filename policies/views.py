"""Console pages for policies: the list (the API's filters), a form with each type's own
fields (changing the type swaps them in with HTMX, or by a reload without JavaScript),
enable / disable / delete, and the dry run. Every write goes through
``policies.services``; the dry run through ``policies.selectors.policy_dry_run``."""

from __future__ import annotations

import json
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.exceptions import ValidationError

from agents.models import Agent
from agents.selectors import agent_list, agent_visible_qs
from controlplane.access import Actor, actor_from_request, can
from controlplane.errors import Invalid, NotFound, ServiceError
from controlplane.http import HtmxHttpRequest
from controlplane.views import paginate, render_page
from policies import selectors, services
from policies.filters import PolicyFilter
from policies.forms import DryRunForm, PolicyForm, rules_form_for
from policies.models import Policy
from policies.types.fields import RulesForm

FILTER_FIELDS = PolicyFilter.Meta.fields
# Where a service's field error is shown on the page's forms.
SERVICE_FIELDS = {"target_agent_id": "target_agent", "target_tags": "target_tags"}


def _require_view(actor: Actor) -> None:
    if not can(actor, "policies.view_policy"):
        raise PermissionDenied("Your role may not view policies.")


def _policy_or_404(actor: Actor, pk: uuid.UUID) -> Policy:
    _require_view(actor)
    try:
        return selectors.policy_get(actor=actor, pk=pk)
    except NotFound:
        raise Http404(f"No policy {pk}.") from None


def _permissions(actor: Actor) -> dict[str, bool]:
    """Which buttons the role gets; each policy is checked again by the service."""
    return {
        "can_add": can(actor, "policies.add_policy"),
        "can_change": can(actor, "policies.change_policy"),
        "can_delete": can(actor, "policies.delete_policy"),
    }


def _back(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


@login_required
def policy_list(request: HttpRequest) -> HttpResponse:
    actor = actor_from_request(request)
    _require_view(actor)
    filterset = PolicyFilter(
        request.GET, queryset=selectors.policy_list(actor=actor), request=request
    )
    policies = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    context = {
        "filter": filterset,
        "page": paginate(request, policies),
        "filtered": any(request.GET.get(name) for name in FILTER_FIELDS),
        "agent_names": agent_list(actor=actor).values_list("name", flat=True),
        "types": Policy.Type.choices,
        "scopes": Policy.Scope.choices,
        **_permissions(actor),
    }
    return render_page(request, "policies/list.html", "policies/_list_table.html", context)


# --- the form --------------------------------------------------------------------------------


def _target_agents(actor: Actor) -> QuerySet[Agent]:
    """The agents a policy may target here: the ones the user may change."""
    return agent_visible_qs(actor=actor, perm="agents.change_agent").order_by("name")


def _show_service_error(exc: ServiceError, form: PolicyForm, rules_form: RulesForm) -> None:
    problems = exc.details.get("validationErrors") if isinstance(exc, Invalid) else None
    for problem in problems or [{"field": "", "message": exc.message}]:
        field = problem["field"]
        if field in SERVICE_FIELDS:
            form.add_error(SERVICE_FIELDS[field], problem["message"])
        elif field.startswith("rules"):
            rules_form.add_error(None, f"{field}: {problem['message']}")
        elif field in form.fields:
            form.add_error(field, problem["message"])
        else:
            form.add_error(None, problem["message"])


def _save(
    actor: Actor, policy: Policy | None, form: PolicyForm, rules_form: RulesForm
) -> tuple[Policy | None, int]:
    """Create or change the policy through the services; (policy, 200) or (None, status)
    with the refusal put on the forms."""
    data = {**form.service_data(), "rules": rules_form.rules}
    try:
        if policy is None:
            return services.policy_create(actor=actor, data=data), 200
        return services.policy_update(actor=actor, policy=policy, data=data), 200
    except ValidationError as exc:  # rules refused by the service: validated again there
        rules_form.add_rule_errors(exc)
        return None, 400
    except ServiceError as exc:
        _show_service_error(exc, form, rules_form)
        return None, exc.status_code


def _form_page(request: HttpRequest, actor: Actor, policy: Policy | None) -> HttpResponse:
    perms = _permissions(actor)
    editable = perms["can_change"] if policy else perms["can_add"]
    if not editable and (policy is None or request.method == "POST"):
        raise PermissionDenied("Your role may not change policies.")
    agents = _target_agents(actor)
    status = 200
    if request.method == "POST":
        policy_type = request.POST.get("policy_type")
        form = PolicyForm(request.POST, agents=agents)
        rules_form = rules_form_for(policy_type)(request.POST)
        status = 400
        valid = [form.is_valid(), rules_form.is_valid()]  # both: every error at once
        if all(valid):
            saved, status = _save(actor, policy, form, rules_form)
            if saved is not None:
                verb = "created" if policy is None else "saved"
                messages.success(request, f"Policy {saved.policy_name} {verb}.")
                return redirect("policies:list")
    else:
        # A change of type (HTMX, or the no-JavaScript reload) asks with ?policy_type=.
        switching = "policy_type" in request.GET
        policy_type = request.GET.get("policy_type") or (
            policy.policy_type if policy else Policy.Type.RATE_LIMIT
        )
        rules_class = rules_form_for(policy_type)
        same = policy is not None and rules_class.policy_type == policy.policy_type
        rules_form = rules_class(rules=policy.rules if same and policy is not None else None)
        if policy is not None and not switching:
            initial = PolicyForm.initial_for(policy)
        elif switching:
            initial = {
                **request.GET.dict(),
                "policy_type": rules_class.policy_type,
                "enabled": "enabled" in request.GET,
            }
        else:
            initial = {}
        form = PolicyForm(initial=initial, agents=agents)
    context = {
        "policy": policy,
        "form": form,
        "rules_form": rules_form,
        "editable": editable,
        "rules_json": json.dumps(policy.rules, indent=2, sort_keys=True) if policy else "",
        **perms,
    }
    if request.method == "POST":
        return render(request, "policies/form.html", context, status=status)
    return render_page(request, "policies/form.html", "policies/_rules_fields.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def policy_new(request: HttpRequest) -> HttpResponse:
    actor = actor_from_request(request)
    _require_view(actor)
    return _form_page(request, actor, None)


@login_required
@require_http_methods(["GET", "POST"])
def policy_edit(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    actor = actor_from_request(request)
    return _form_page(request, actor, _policy_or_404(actor, pk))


# --- enable, disable, delete ---------------------------------------------------------------


@login_required
@require_POST
def policy_toggle(request: HtmxHttpRequest, pk: uuid.UUID, enabled: bool) -> HttpResponse:
    actor = actor_from_request(request)
    policy = _policy_or_404(actor, pk)
    status, error = 200, ""
    try:
        policy = services.policy_set_enabled(actor=actor, policy=policy, enabled=enabled)
        done = f"Policy {policy.policy_name} is {'enabled' if enabled else 'disabled'}."
    except ServiceError as exc:
        status, error = exc.status_code, exc.message
    if request.htmx:
        context = {
            "policy": selectors.policy_get(actor=actor, pk=policy.pk),
            "error": error,
            **_permissions(actor),
        }
        return render(request, "policies/_row.html", context, status=status)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, done)
    return redirect(_back(request, reverse("policies:list")))


@login_required
@require_http_methods(["GET", "POST"])
def policy_delete(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    """GET asks to confirm; POST deletes."""
    actor = actor_from_request(request)
    policy = _policy_or_404(actor, pk)
    if not can(actor, "policies.delete_policy"):
        raise PermissionDenied("Your role may not delete policies.")
    status, error = 200, ""
    if request.method == "POST":
        try:
            services.policy_delete(actor=actor, policy=policy)
        except ServiceError as exc:
            status, error = exc.status_code, exc.message
        else:
            messages.success(request, f"Policy {policy.policy_name} deleted.")
            return redirect("policies:list")
    context = {"policy": policy, "error": error}
    return render(request, "policies/delete.html", context, status=status)


# --- the dry run -----------------------------------------------------------------------------


@login_required
def policy_dry_run(request: HttpRequest) -> HttpResponse:
    """What would happen if the agent ran (or called a tool) now or at a given time, and
    which policy said what: nothing is created, no counter moves."""
    actor = actor_from_request(request)
    _require_view(actor)
    form = DryRunForm(request.GET or None, agents=agent_list(actor=actor))
    decision = None
    status = 200
    if form.is_bound:
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                decision = selectors.policy_dry_run(
                    actor=actor,
                    agent=data["agent"],
                    input=data["input"],
                    at=data["at"],
                    action=data["action"],
                    destination=data["destination"] or None,
                    target=data["target"],
                    complexity=data["complexity"] or None,
                )
                status = 200
            except ServiceError as exc:
                form.add_error(None, exc.message)
                status = exc.status_code
    context = {"form": form, "decision": decision}
    return render_page(
        request, "policies/dry_run.html", "policies/_dry_run.html", context, status=status
    )
