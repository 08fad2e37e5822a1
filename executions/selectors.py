"""Reads of executions, through what the actor may see (the agents they may view)."""

from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet

from agents.selectors import agent_visible_qs
from controlplane.access import Actor, can, is_admin
from controlplane.errors import NotFound
from controlplane.ids import parse_uuid
from executions.models import Execution


def execution_list_for(*, actor: Actor) -> QuerySet[Execution]:
    """The role must let the actor read runs; then the runs of the agents they may see."""
    executions = Execution.objects.select_related("agent", "agent_version")
    if not can(actor, "executions.view_execution"):
        return executions.none()
    if is_admin(actor.user):
        return executions
    return executions.filter(agent__in=agent_visible_qs(actor=actor).values("pk"))


def execution_get(*, actor: Actor, pk: UUID | str) -> Execution:
    """The run, if the actor may see it; ``NotFound`` (``execution_not_found``) for an
    unknown, hidden or malformed id alike."""
    key = parse_uuid(pk)
    execution = None if key is None else execution_list_for(actor=actor).filter(pk=key).first()
    if execution is None:
        raise NotFound(f"No execution {pk!r}.", code="execution_not_found")
    return execution


def execution_for_report(*, pk: str) -> Execution | None:
    """The run an external runtime reports on, whoever asks (the caller checks the run's
    callback token); ``None`` for an unknown or malformed id."""
    key = parse_uuid(pk)
    if key is None:
        return None
    return Execution.objects.filter(pk=key).select_related("agent").first()
