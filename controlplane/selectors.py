from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from controlplane.access import Actor, actor_is_admin, can, is_admin, role_permissions
from controlplane.hooks import Provider
from controlplane.models import APIKey, AuditEvent
from controlplane.roles import Role

# The ids of the agents an actor may see, as a query (``agents`` provides it).
visible_agent_ids: Provider[[Actor], QuerySet[Any]] = Provider("controlplane.visible_agent_ids")


def audit_event_list(*, actor: Actor) -> QuerySet[AuditEvent]:
    """Admins see every event; others the events about agents they may see, and their own."""
    if actor.user is None or not can(actor, "controlplane.view_auditevent"):
        return AuditEvent.objects.none()
    events = AuditEvent.objects.order_by("-id")
    if is_admin(actor.user):
        return events
    visible = visible_agent_ids(actor)
    return events.filter(Q(agent_id__in=visible) | Q(actor_user_id=actor.user.pk))


def api_key_list(*, actor: Actor) -> QuerySet[APIKey]:
    """Admins see every key; others their own."""
    keys = APIKey.objects.select_related("owner").order_by("-created")
    if is_admin(actor.user):
        return keys
    if actor.user is None:
        return keys.none()
    return keys.filter(owner=actor.user)


def api_key_roles_for(*, actor: Actor) -> list[Role]:
    """The roles the actor may give a new key: any for admins, else the roles that grant
    nothing beyond what the actor's own roles grant (an operator may mint a viewer key)."""
    if actor.user is None or not can(actor, "controlplane.add_apikey"):
        return []
    if actor_is_admin(actor):
        return list(Role)
    held = actor.user.get_all_permissions()
    return [role for role in Role if role != Role.ADMIN and role_permissions(role) <= held]
