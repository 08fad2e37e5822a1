"""API keys: created (the raw key is returned once and never stored), revoked, audited."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from controlplane.access import Actor, actor_is_admin, can
from controlplane.audit import audit_record
from controlplane.errors import Conflict, Forbidden, Invalid
from controlplane.models import APIKey
from controlplane.roles import Role
from controlplane.selectors import api_key_roles_for


def _key_snapshot(key: APIKey) -> dict[str, object]:
    return {
        "name": key.name,
        "prefix": key.prefix,
        "owner": key.owner.get_username(),
        "role": key.role,
        "expiry_date": key.expiry_date,
        "revoked": key.revoked,
    }


@transaction.atomic
def api_key_create(
    *,
    actor: Actor,
    name: str,
    role: str,
    owner: User | None = None,
    expiry_date: datetime | None = None,
) -> tuple[APIKey, str]:
    """A new key for ``owner`` (default: the actor). Returns the key and its secret, which
    is shown once: only its hash is stored."""
    owner = owner or actor.user
    if owner is None:
        raise Invalid.field("owner", "A key needs an owner.", "required")
    if not can(actor, "controlplane.add_apikey"):
        raise Forbidden("Your role may not create API keys.")
    if owner != actor.user and not actor_is_admin(actor):
        raise Forbidden("Only an admin may create a key for someone else.")
    if role not in Role.values:
        raise Invalid.field("role", f"Unknown role {role!r}.", "invalid_choice")
    if not actor_is_admin(actor) and role not in api_key_roles_for(actor=actor):
        raise Invalid.field(
            "role", f"The {role} role grants more than you hold.", "role_exceeds_yours"
        )
    if expiry_date is not None and expiry_date <= timezone.now():
        raise Invalid.field("expiry_date", "The expiry must be in the future.", "past")
    if not name.strip():
        raise Invalid.field("name", "A key needs a name.", "required")
    key, secret = APIKey.objects.create_key(
        name=name.strip()[:50], owner=owner, role=role, expiry_date=expiry_date
    )
    audit_record(
        actor=actor,
        action="api_key.created",
        target=key,
        after=_key_snapshot(key),
    )
    return key, secret


@transaction.atomic
def api_key_revoke(*, actor: Actor, key: APIKey) -> APIKey:
    """Revoke a key for good; its next request is refused."""
    if not (
        actor_is_admin(actor)
        or (
            key.owner_id == getattr(actor.user, "pk", None)
            and can(actor, "controlplane.change_apikey")
        )
    ):
        raise Forbidden("You may revoke only your own keys.")
    key = APIKey.objects.select_for_update().select_related("owner").get(pk=key.pk)
    if key.revoked:
        raise Conflict("This key is already revoked.", code="already_revoked")
    before = _key_snapshot(key)
    key.revoked = True
    key.revoked_at = timezone.now()
    key.save()
    audit_record(
        actor=actor,
        action="api_key.revoked",
        target=key,
        before=before,
        after=_key_snapshot(key),
    )
    return key
