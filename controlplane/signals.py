"""Sign-ins and failed sign-ins go to the audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from controlplane.access import Actor
from controlplane.audit import audit_record
from controlplane.models import AuditTarget

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.http import HttpRequest


@receiver(user_logged_in)
def audit_login(sender: type[User], request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    audit_record(
        actor=Actor(user=user),
        action="auth.login",
        target=AuditTarget("user", user.pk, user.get_username()),
    )


@receiver(user_login_failed)
def audit_login_failed(
    sender: str, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = str(credentials.get("username", ""))[:150]
    audit_record(
        actor=Actor.for_system("auth"),
        action="auth.login_failed",
        target=AuditTarget("user", username, username),
    )
