from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from controlplane.audit import audit_verify


class Command(BaseCommand):
    help = "Check the audit log's hash chain; report the first changed, inserted or removed event."

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_verify()
        if not report.ok:
            raise CommandError(f"AUDIT CHAIN BROKEN: {report.message}")
        self.stdout.write(self.style.SUCCESS(report.message))
