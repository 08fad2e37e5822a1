from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from console.demo import ADMIN_USERNAME, demo_load


class Command(BaseCommand):
    help = "Load the demo data (admin user, sample agents, two disabled policies) if missing."

    def handle(self, *args: Any, **options: Any) -> None:
        result = demo_load()
        for item in result.created:
            self.stdout.write(f"created {item}")
        if result.admin_password:
            self.stdout.write(
                self.style.WARNING(
                    "\n  Log in as  "
                    f"{ADMIN_USERNAME} / {result.admin_password}\n"
                    "  This password is shown once. Change it with: "
                    f"manage.py changepassword {ADMIN_USERNAME}\n"
                )
            )
        elif not result.created:
            self.stdout.write("demo data already loaded")
