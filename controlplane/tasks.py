"""Tasks of the kernel."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="controlplane.tasks.maintenance_audit_seal", ignore_result=True)
def maintenance_audit_seal() -> int:
    """Chain the audit events committed since the last run (beat, every few seconds)."""
    from controlplane.audit import audit_seal_all

    return audit_seal_all()
