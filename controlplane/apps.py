from __future__ import annotations

from django.apps import AppConfig


class ControlPlaneConfig(AppConfig):
    name = "controlplane"
    verbose_name = "Control plane"

    def ready(self) -> None:
        from controlplane import live, schema, signals  # noqa: F401 - audit receivers, OpenAPI auth
        from executions.events import execution_changed

        execution_changed.connect(live.on_execution_changed, dispatch_uid="live")
