from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from controlplane.access import Actor
from integrations.vault import VaultError, vault_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every credential with the first key of CONTROLPLANE_VAULT_KEYS. Put the "
        "new key first, keep the old ones after it, run this, then drop the old ones."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = vault_rotate(actor=Actor.for_system("manage.py"))
        except VaultError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} credential(s)."))
