"""Console pages for approvers: the queue (pending first, expiring soonest; tabs for what
waits for me and for everything, with the statistics panel on top), one request's page with
its history, and the endpoint behind Approve / Reject. Deciding goes through
``approvals.services.approval_decide``: an HTMX decision answers with the request's card (or
its page's section) in the new state; a refused one (403, 409) with the service's message
beside the current state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypedDict, cast
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from approvals import selectors, services
from approvals.models import ApprovalRequest
from controlplane.access import Actor, actor_from_request, can
from controlplane.errors import NotFound, ServiceError
from controlplane.http import HtmxHttpRequest
from controlplane.views import paginate, render_page

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    from approvals.models import ApprovalDecision

    class CardFields(TypedDict):
        """What ``_prepare`` sets on a request for its card."""

        run_visible: bool
        my_decision: ApprovalDecision | None
        overdue: bool
        refusal: str | None
        can_decide: bool
        show_refusal: bool

    Card = WithAnnotations[ApprovalRequest, CardFields]

A = ApprovalRequest.Status
TABS = {"pending": "Pending", "mine": "Assigned to me", "all": "All"}
DETAIL_TARGET = "approval"  # the id of the detail page's section; cards are approval-<pk>


def _require_view(actor: Actor) -> None:
    if not can(actor, "approvals.view_approvalrequest"):
        raise PermissionDenied("Your role may not view approval requests.")


def _approval_or_404(actor: Actor, pk: UUID | str) -> ApprovalRequest:
    _require_view(actor)
    try:
        return selectors.approval_get(actor=actor, pk=pk)
    except NotFound:
        raise Http404(f"No approval request {pk}.") from None


def _prepare(actor: Actor, rows: Iterable[ApprovalRequest]) -> list[Card]:
    """What a card shows beyond the row, from the prefetched decisions: approvals so far,
    the actor's own decision, whether they may decide now (and if not, why), and whether
    they may open the run."""
    approvals = cast("list[Card]", list(rows))  # the card's fields are set below
    assert actor.user is not None  # the views let only users through (_require_view)
    now = timezone.now()
    may_decide_any = can(actor, "approvals.decide_approvalrequest")
    # An approver listed by e-mail may not be allowed to open the run itself.
    runs_agents = selectors.agents_whose_runs_are_visible(
        actor=actor, agent_ids={approval.agent_id for approval in approvals}
    )
    for approval in approvals:
        approval.run_visible = approval.agent_id in runs_agents
        approval.my_decision = next(
            (d for d in approval.decisions.all() if d.user_id == actor.user.pk), None
        )
        approval.overdue = approval.expires_at <= now
        approval.refusal = services.approval_refusal_now(actor, approval)
        approval.can_decide = approval.refusal is None
        # A role that may decide is told why not here (the card says itself when it is
        # settled or waits for others); a viewer is not told on every card.
        approval.show_refusal = (
            may_decide_any
            and approval.is_pending
            and approval.my_decision is None
            and approval.refusal is not None
        )
    return approvals


def _back(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


@login_required
def approval_queue(request: HtmxHttpRequest) -> HttpResponse:
    actor = actor_from_request(request)
    _require_view(actor)
    show = request.GET.get("show", "pending")
    if show not in TABS:
        show = "pending"
    approvals = selectors.approval_list(actor=actor).prefetch_related("decisions")
    if show != "all":
        approvals = approvals.filter(status=A.PENDING)
    if show == "mine":
        approvals = approvals.filter(selectors.assigned_q(actor.user))
    page = paginate(request, approvals, per_page=25)
    page.object_list = _prepare(actor, page.object_list)
    context: dict[str, Any] = {
        "page": page,
        "show": show,
        "tabs": TABS,
        "back": request.get_full_path(),
    }
    if not request.htmx or request.htmx.history_restore_request:
        context["stats"] = selectors.approval_stats(actor=actor)
    return render_page(request, "approvals/queue.html", "approvals/_queue.html", context)


@login_required
def approval_detail(request: HttpRequest, pk: UUID) -> HttpResponse:
    actor = actor_from_request(request)
    approval = _prepare(actor, [_approval_or_404(actor, pk)])[0]
    context = {"approval": approval, "back": request.get_full_path()}
    return render_page(request, "approvals/detail.html", "approvals/_detail.html", context)


def _notice(approval: ApprovalRequest) -> str:
    if approval.is_pending:
        return "Your approval is counted; more approvals are needed."
    run = approval.execution.get_status_display().lower()
    return f"{approval.get_status_display()}: the run is {run}."


@login_required
@require_POST
def approval_decide(request: HtmxHttpRequest, pk: UUID) -> HttpResponse:
    """Approve or reject (the submit button's ``verdict``) with ``notes``."""
    actor = actor_from_request(request)
    approval = _approval_or_404(actor, pk)
    status, notice, error = 200, "", ""
    try:
        services.approval_decide(
            actor=actor,
            request=approval,
            verdict=request.POST.get("verdict", ""),
            notes=request.POST.get("notes", ""),
        )
    except ServiceError as exc:
        status, error = exc.status_code, exc.message
    # The state as it is now, whoever settled it.
    approval = _prepare(actor, [_approval_or_404(actor, pk)])[0]
    if not error:
        notice = _notice(approval)
    back = _back(request, reverse("approvals:detail", args=[approval.pk]))
    context = {
        "approval": approval,
        "notice": notice,
        "error": error,
        # What was typed survives a refusal that leaves the form on the card (a bad verdict).
        "notes": request.POST.get("notes", "") if error else "",
        "back": back,
    }
    if request.htmx:
        partial = (
            "approvals/_detail.html"
            if request.htmx.target == DETAIL_TARGET
            else "approvals/_card.html"
        )
        response = render(request, partial, context, status=status)
        patch_vary_headers(response, ["HX-Request"])
        return response
    if error:
        # No script: the request's page, with why, at the refusal's status.
        return render(request, "approvals/detail.html", context, status=status)
    messages.success(request, notice)
    return redirect(back)


@login_required
def approval_nav_count(request: HttpRequest) -> HttpResponse:
    """The pending count beside the navigation's Approvals link (loaded by the link)."""
    actor = actor_from_request(request)
    count = 0
    if can(actor, "approvals.view_approvalrequest"):
        count = selectors.approval_visible_qs(actor=actor).filter(status=A.PENDING).count()
    return render(request, "approvals/_nav_count.html", {"count": count})
