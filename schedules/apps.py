from __future__ import annotations

from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"
    verbose_name = "Schedules"

    def ready(self) -> None:
        from executions.lifecycle import run_moved
        from schedules.services import cron_run_ended

        run_moved.subscribe(cron_run_ended)
