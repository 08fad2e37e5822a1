from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from controlplane import services
from controlplane.access import Actor
from controlplane.errors import ServiceError
from controlplane.roles import Role


class Command(BaseCommand):
    help = "Create an API key for a user; prints the key once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="The owner's username.")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--name", required=True, help="What the key is for.")
        parser.add_argument("--days", type=int, help="Expire after this many days.")

    def handle(self, *args: Any, **options: Any) -> None:
        owner = User.objects.filter(username=options["user"]).first()
        if owner is None:
            raise CommandError(f"No user {options['user']!r}.")
        days = options.get("days")
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1.")
        try:
            key, secret = services.api_key_create(
                actor=Actor(user=owner),
                name=options["name"],
                role=options["role"],
                expiry_date=timezone.now() + timedelta(days=days) if days else None,
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(f"API key {key.prefix} ({key.name}, role {key.role}) for {owner}:")
        self.stdout.write(secret)
