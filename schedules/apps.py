from __future__ import annotations

from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"
    verbose_name = "Schedules"

    def ready(self) -> None:
        from agents.services import agent_changed
        from executions.lifecycle import run_moved
        from schedules.services import cron_run_ended, schedule_follow_agent

        agent_changed.subscribe(schedule_follow_agent)
        run_moved.subscribe(cron_run_ended)
