"""Who is acting, and whether they may.

Every service takes an ``Actor``: a user, a user acting through an API key, or the system
(beat, a worker). ``can()`` is the one permission rule used by the API, the pages, the
admin and the services:

- the admin role (or a superuser) may do everything;
- otherwise the user's role must grant the permission (a group permission), and for an
  object, a django-guardian object permission must grant it on that object, to the user
  or to one of the user's groups (the agent's team);
- an API key never grants more than its own role, whatever its owner may do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from django.contrib.auth.models import AnonymousUser, Permission

from controlplane.roles import Role

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.db.models import Model
    from django.http import HttpRequest

    from controlplane.models import APIKey


@dataclass
class Actor:
    user: User | None = None
    api_key: APIKey | None = None
    system: str = ""
    _role_perms: set[str] | None = field(default=None, repr=False, compare=False)
    # Querysets built for this actor, kept for the actor's life (a request, a task): see
    # ``agents.selectors.agent_visible_qs``.
    _built: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def for_system(cls, name: str) -> Actor:
        return cls(system=name)

    @property
    def kind(self) -> str:
        if self.api_key is not None:
            return "api_key"
        if self.user is not None:
            return "user"
        return "system"

    @property
    def label(self) -> str:
        if self.api_key is not None:
            owner = cast("User", self.user)  # a key acts as its owner: never without a user
            return f"{owner.get_username()} via api-key {self.api_key.prefix}"
        if self.user is not None:
            return self.user.get_username()
        return f"system:{self.system or 'unknown'}"

    @property
    def email(self) -> str:
        return getattr(self.user, "email", "") or ""

    def key_role_permissions(self) -> set[str]:
        if self._role_perms is None:
            self._role_perms = role_permissions(self.api_key.role) if self.api_key else set()
        return self._role_perms


def actor_from_request(request: HttpRequest) -> Actor:
    """The request's actor, made once per request (it caches the key role's permissions)."""
    cached: Actor | None = getattr(request, "_cp_actor", None)
    if cached is not None:
        return cached
    user = getattr(request, "user", None)
    if user is None or isinstance(user, AnonymousUser) or not user.is_authenticated:
        return Actor()
    from controlplane.models import APIKey

    auth = getattr(request, "auth", None)
    actor = Actor(user=user, api_key=auth if isinstance(auth, APIKey) else None)
    request._cp_actor = actor  # type: ignore[attr-defined]  # our per-request cache
    return actor


def role_permissions(role: str) -> set[str]:
    """The "app_label.codename" permissions the role's group holds."""
    rows = Permission.objects.filter(group__name=role).values_list(
        "content_type__app_label", "codename"
    )
    return {f"{app}.{codename}" for app, codename in rows}


def is_admin(user: User | None) -> bool:
    if user is None or not user.is_active:
        return False
    if user.is_superuser:
        return True
    cached: bool | None = getattr(user, "_cp_is_admin", None)
    if cached is None:
        cached = user.groups.filter(name=Role.ADMIN).exists()
        user._cp_is_admin = cached  # type: ignore[attr-defined]  # our per-user-object cache
    return cached


def actor_is_admin(actor: Actor) -> bool:
    if not is_admin(actor.user):
        return False
    return actor.api_key is None or actor.api_key.role == Role.ADMIN


def can(actor: Actor, perm: str, obj: Model | None = None) -> bool:
    """May the actor use ``perm`` ("app_label.codename"), on ``obj`` if given?"""
    user = actor.user
    if user is None or not user.is_active:
        return False
    key = actor.api_key
    if key is not None and key.role != Role.ADMIN and perm not in actor.key_role_permissions():
        return False
    if is_admin(user):
        return True
    if not user.has_perm(perm):
        return False
    return obj is None or user.has_perm(perm, obj)


def require_role(actor: Actor, perm: str, message: str) -> None:
    """403 (``Forbidden`` with ``message``) for an actor whose role lacks ``perm``
    altogether: asked before the request's body is read, so a role that may never write
    hears that, not the body's validation errors. The right on one object is checked later,
    where the object is found."""
    if not can(actor, perm):
        from controlplane.errors import Forbidden  # errors -> audit -> this module

        raise Forbidden(message)
