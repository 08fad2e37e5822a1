"""Reads of approvals, always through what the actor may see: admins see every request;
others those of agents they may view, and those they are an approver of."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict
from uuid import UUID

from django.db.models import (
    Avg,
    Case,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    Min,
    Q,
    QuerySet,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Cast
from django.utils import timezone

from agents.models import Agent
from agents.selectors import agent_visible_qs
from approvals.models import ApprovalDecision, ApprovalRequest
from controlplane.access import Actor, can, is_admin
from controlplane.errors import NotFound
from controlplane.ids import parse_uuid

if TYPE_CHECKING:
    from django.contrib.auth.models import User

A = ApprovalRequest.Status
# The agents an actor may see, when the caller has read them already: a query, or their ids.
Agents = QuerySet[Agent, Any] | Collection[UUID]


def assigned_q(user: User | None) -> Q:
    """Requests that list the user (by e-mail or one of their groups) as an approver; for
    an admin, also those that list nobody (admins decide those)."""
    if user is None:
        return Q(pk__in=[])
    needles = [f'"{user.email.strip().lower()}"'] if user.email else []
    needles += [f'"group:{name}"' for name in user.groups.values_list("name", flat=True)]
    q = Q(pk__in=[])
    for needle in needles:
        q |= Q(approvers_text__icontains=needle)
    if is_admin(user):
        q |= Q(approvers=[])
    return q


def _annotated() -> QuerySet[ApprovalRequest]:
    return ApprovalRequest.objects.annotate(approvers_text=Cast("approvers", TextField()))


def approval_visible_qs(*, actor: Actor, agents: Agents | None = None) -> QuerySet[ApprovalRequest]:
    """``agents``: the agents the actor may see (ids, or a query of them) when the caller
    has read them already; by default, read here."""
    if not can(actor, "approvals.view_approvalrequest"):
        return ApprovalRequest.objects.none()
    rows = _annotated()
    if is_admin(actor.user):
        return rows
    if agents is None:
        agents = agent_visible_qs(actor=actor)
    return rows.filter(Q(agent__in=agents) | assigned_q(actor.user))


def agents_whose_runs_are_visible(*, actor: Actor, agent_ids: Collection[UUID]) -> set[UUID]:
    """Of these agents, those whose runs the actor may open (a request's card links to its
    run): that takes the role's right to read runs and the right to see the agent."""
    if not can(actor, "executions.view_execution"):
        return set()
    return set(agent_visible_qs(actor=actor).filter(pk__in=agent_ids).values_list("pk", flat=True))


def approval_list(*, actor: Actor) -> QuerySet[ApprovalRequest]:
    """Pending first, expiring soonest first; then the decided ones, newest first."""
    return (
        approval_visible_qs(actor=actor)
        .select_related("agent", "execution", "requested_by")
        .annotate(
            pending_first=Case(
                When(status=A.PENDING, then=Value(0)), default=Value(1), output_field=IntegerField()
            )
        )
        .order_by("pending_first", F("expires_at").asc(nulls_last=True), "-created_at")
    )


def approval_get(*, actor: Actor, pk: UUID | str) -> ApprovalRequest:
    """The request, if the actor may see it; ``NotFound`` for an unknown, hidden or
    malformed id alike."""
    key = parse_uuid(pk)
    if key is None:
        raise NotFound("No such approval request.")
    try:
        return (
            approval_visible_qs(actor=actor)
            .select_related("agent", "execution", "requested_by", "policy")
            .prefetch_related("decisions")
            .get(pk=key)
        )
    except ApprovalRequest.DoesNotExist:
        raise NotFound("No such approval request.") from None


class SlowApprover(TypedDict):
    approver: str
    decisions: int
    average_wait_seconds: float | None


class ApprovalStats(TypedDict):
    pending: int
    oldest_pending_at: datetime | None
    oldest_pending_seconds: float | None
    decided: int
    average_wait_seconds: float | None
    slowest_approvers: list[SlowApprover]


def approval_stats(*, actor: Actor, days: int = 30, agents: Agents | None = None) -> ApprovalStats:
    """The dashboard's approval figures over what the actor may see: pending now and how
    long the oldest of them has waited, the average wait of requests people approved or
    rejected, and the slowest approvers (average time from request to their decision) over
    the last ``days``. ``agents`` as for ``approval_visible_qs``."""
    visible = approval_visible_qs(actor=actor, agents=agents)
    now = timezone.now()
    since = now - timedelta(days=days)
    wait = ExpressionWrapper(F("decided_at") - F("created_at"), output_field=DurationField())
    pending = Q(status=A.PENDING)
    # Decided by people: expiry and cancellation are not an approver's wait.
    decided = Q(status__in=[A.APPROVED, A.REJECTED], created_at__gte=since)
    figures = visible.filter(pending | decided).aggregate(
        pending=Count("pk", filter=pending),
        oldest=Min("created_at", filter=pending),
        decided=Count("pk", filter=decided),
        average=Avg(wait, filter=decided),
    )
    by_approver = (
        ApprovalDecision.objects.filter(request__in=visible.values("pk"), at__gte=since)
        .values("user_label")
        .annotate(
            decisions=Count("id"),
            average=Avg(
                ExpressionWrapper(F("at") - F("request__created_at"), output_field=DurationField())
            ),
        )
        .order_by("-average")[:5]
    )
    return {
        "pending": figures["pending"],
        "oldest_pending_at": figures["oldest"],
        "oldest_pending_seconds": (now - figures["oldest"]).total_seconds()
        if figures["oldest"] is not None
        else None,
        "decided": figures["decided"],
        "average_wait_seconds": figures["average"].total_seconds()
        if figures["average"] is not None
        else None,
        "slowest_approvers": [
            {
                "approver": row["user_label"],
                "decisions": row["decisions"],
                "average_wait_seconds": row["average"].total_seconds()
                if row["average"] is not None
                else None,
            }
            for row in by_approver
        ],
    }
