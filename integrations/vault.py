"""The credential vault: Fernet encryption at rest, keys from the environment, rotatable.

``CONTROLPLANE_VAULT_KEYS`` holds one or more Fernet keys, comma-separated, newest first:
new secrets are encrypted with the first, any of them decrypts (``MultiFernet``), and
``manage.py vault_rotate`` re-encrypts everything with the first. With no environment a key
is generated once into ``var/vault_key``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any
from uuid import UUID

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.access import Actor, actor_is_admin, can
from controlplane.audit import audit_record
from controlplane.errors import Forbidden, Invalid, NotFound
from controlplane.models import AuditTarget
from integrations.models import Credential


class VaultError(Exception):
    pass


@cache
def _keyring(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise VaultError(f"A vault key is not a valid Fernet key: {exc}") from None


def _fernet() -> MultiFernet:
    return _keyring(tuple(settings.VAULT_KEYS))


def encrypt(secret: dict[str, Any]) -> str:
    return _fernet().encrypt(json.dumps(secret, sort_keys=True).encode()).decode()


def decrypt(token: str) -> dict[str, Any]:
    try:
        secret: dict[str, Any] = json.loads(_fernet().decrypt(token.encode()))  # an object
    except InvalidToken:
        raise VaultError("This credential cannot be decrypted with the vault keys.") from None
    return secret


@dataclass(frozen=True)
class Secret:
    """A decrypted credential, for one use. ``repr`` never shows the values."""

    name: str
    kind: str
    values: dict[str, Any]
    config: dict[str, Any]

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, kind={self.kind!r}, values=[redacted])"


def _snapshot(credential: Credential) -> dict[str, Any]:
    return {"name": credential.name, "kind": credential.kind, "config": credential.config}


@transaction.atomic
def credential_save(
    *,
    actor: Actor,
    name: str,
    kind: str,
    secret: dict[str, Any] | None,
    config: dict[str, Any] | None = None,
    description: str = "",
) -> Credential:
    """Create or change a credential. ``secret=None`` keeps the stored secret."""
    if not can(actor, "integrations.add_credential") or not can(
        actor, "integrations.change_credential"
    ):
        raise Forbidden("Your role may not manage credentials.")
    if kind not in Credential.Kind.values:
        raise Invalid.field("kind", f"Unknown kind {kind!r}.", "invalid_choice")
    existing = Credential.objects.select_for_update().filter(name=name).first()
    if existing is None and secret is None:
        raise Invalid.field("secret", "A new credential needs its secret.", "required")
    credential = existing or Credential(name=name, created_by=actor.user)
    before = _snapshot(credential) if existing else None
    credential.kind = kind
    credential.description = description
    credential.config = config or {}
    if secret is not None:
        credential.ciphertext = encrypt(secret)
    credential.save()
    audit_record(
        actor=actor,
        action="credential.saved",
        target=credential,
        before=before,
        # Not "secret_changed": the audit log redacts keys that look secret, values included.
        after={**_snapshot(credential), "value_replaced": secret is not None},
    )
    return credential


def credential_use(
    *,
    name: str,
    purpose: str,
    actor: Actor | None = None,
    agent_id: UUID | str | None = None,
    execution_id: UUID | str | None = None,
) -> Secret:
    """Decrypt a credential for one use, and audit the use (who, for what, which run)."""
    credential = Credential.objects.filter(name=name).first()
    if credential is None:
        raise NotFound(f"No credential named {name!r}.", code="credential_not_found")
    secret = Secret(
        credential.name, credential.kind, decrypt(credential.ciphertext), credential.config
    )
    now = timezone.now()
    Credential.objects.filter(pk=credential.pk).update(last_used_at=now)
    audit_record(
        actor=actor or Actor.for_system("vault"),
        action="credential.used",
        target=AuditTarget("credential", credential.pk, credential.name, agent_id),
        after={"purpose": purpose, "execution_id": str(execution_id) if execution_id else None},
    )
    return secret


def credential_exists(name: str) -> bool:
    return Credential.objects.filter(name=name).exists()


@transaction.atomic
def credential_delete(*, actor: Actor, credential: Credential) -> None:
    """Delete a credential, audited (name, kind and config; never the secret)."""
    if not can(actor, "integrations.delete_credential"):
        raise Forbidden("Your role may not manage credentials.")
    before = _snapshot(credential)
    pk = credential.pk
    Credential.objects.filter(pk=pk).delete()
    audit_record(
        actor=actor,
        action="credential.deleted",
        target=AuditTarget("credential", pk, before["name"]),
        before=before,
    )


@transaction.atomic
def vault_rotate(*, actor: Actor) -> int:
    """Re-encrypt every credential with the newest key; returns how many.

    Allowed to the system (``manage.py vault_rotate``: whoever runs it already holds the keys
    in the environment) and to admins; ``can()`` never passes a system actor, hence the
    explicit allowance. An anonymous ``Actor()`` is no system: it needs a name."""
    is_system = actor.user is None and actor.api_key is None and bool(actor.system)
    if not is_system and not actor_is_admin(actor):
        raise Forbidden("Only an admin may rotate the vault keys.")
    keyring = _fernet()
    count = 0
    for credential in Credential.objects.select_for_update():
        try:
            rotated = keyring.rotate(credential.ciphertext.encode())
        except InvalidToken:
            raise VaultError(
                f"The credential {credential.name!r} cannot be decrypted with the vault keys: "
                "was an old key dropped from CONTROLPLANE_VAULT_KEYS too early?"
            ) from None
        credential.ciphertext = rotated.decode()
        credential.save(update_fields=["ciphertext", "updated_at"])
        count += 1
    audit_record(
        actor=actor,
        action="vault.rotated",
        target=AuditTarget("vault", "credentials"),
        after={"reencrypted": count},  # "credentials" would be redacted as secret-looking
    )
    return count
