from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey
from rest_framework_api_key.models import APIKeyManager as LibraryAPIKeyManager

from controlplane.roles import Role


class Timestamped(models.Model):
    """When a row was made and last changed."""

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Authored(Timestamped):
    """A definition someone made (an agent, a version, a policy, a credential): who, and when
    it was made and last changed. The user may go; the row stays."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        abstract = True


@dataclass(frozen=True)
class AuditTarget:
    """What an audit event is about: its type and id, how it reads in the log, and the agent
    it concerns (whoever may see the agent may read the event)."""

    type: str
    id: object
    repr: str = ""
    agent_id: uuid.UUID | str | None = None


class AuditEvent(models.Model):
    """One change, append-only, chained to the previous event by a hash.

    ``hash`` covers every other field and the previous event's hash, so changing,
    inserting or removing an event breaks the chain where it happened; ``manage.py
    audit_verify`` finds the first break. The chain link (seq, prev_hash, hash) is added
    once, by ``audit_seal``, seconds after the commit; the content never changes: ``save``
    refuses updates, and on PostgreSQL a trigger refuses every UPDATE but that one sealing
    and every DELETE. Actors and targets are kept as values, not foreign keys, so that
    deleting a user or an object never rewrites history.
    """

    class ActorType(models.TextChoices):
        USER = "user"
        API_KEY = "api_key"
        SYSTEM = "system"

    # Its place in the chain, set once by audit_seal (NULL until then).
    seq = models.PositiveBigIntegerField(unique=True, null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_user_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, db_index=True)
    target_id = models.CharField(max_length=64, db_index=True)
    target_repr = models.CharField(max_length=200, blank=True)
    # The agent the change concerns, if any: the audit log is visible to who may see it.
    agent_id = models.UUIDField(null=True, blank=True, db_index=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    ip = models.CharField(max_length=45, blank=True)  # text: hashed exactly as stored
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["target_type", "target_id", "-id"]),
            models.Index(fields=["id"], condition=Q(seq__isnull=True), name="auditevent_unsealed"),
        ]

    def __str__(self) -> str:
        place = f"#{self.seq}" if self.seq else "(not yet chained)"
        return f"{place} {self.action} {self.target_type}:{self.target_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise RuntimeError("audit events are append-only")
        super().save(*args, **kwargs)

    save.alters_data = True  # type: ignore[attr-defined]  # Django's mark, on a function

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise RuntimeError("audit events are append-only")

    delete.alters_data = True  # type: ignore[attr-defined]  # Django's mark, on a function


class AuditChainHead(models.Model):
    """The last event's sequence number and hash.

    Writers lock this row, so events are chained one at a time, and a removed tail is
    detected because the head still names it.
    """

    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"audit head #{self.seq}"


class APIKeyManager(LibraryAPIKeyManager):
    # The library types its keys as its abstract model; this manager's are ``APIKey``.

    def get_usable_keys(self) -> models.QuerySet[APIKey]:
        return super().get_usable_keys().select_related("owner")

    def get_from_key(self, key: str) -> APIKey:
        return cast(APIKey, super().get_from_key(key))

    def create_key(self, **kwargs: Any) -> tuple[APIKey, str]:
        key, secret = super().create_key(**kwargs)
        return cast(APIKey, key), secret


class APIKey(AbstractAPIKey):
    """A key for automation: shown once, stored hashed (djangorestframework-api-key).

    It authenticates as its owner, but never with more rights than its role grants.
    """

    objects: ClassVar[APIKeyManager] = APIKeyManager()

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    @property
    def is_usable(self) -> bool:
        return not self.revoked and not self.has_expired

    def audit_target(self) -> AuditTarget:
        return AuditTarget("api_key", self.prefix, self.name)
