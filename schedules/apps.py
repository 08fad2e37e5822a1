from __future__ import annotations

from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"
    verbose_name = "Schedules"

    def ready(self) -> None:
        from agents.sections import Section, agent_list_sections, agent_page_sections
        from agents.services import agent_changed
        from executions.lifecycle import run_moved
        from schedules import views
        from schedules.fires import cron_run_ended
        from schedules.services import schedule_follow_agent

        agent_changed.subscribe(schedule_follow_agent)
        run_moved.subscribe(cron_run_ended)
        agent_page_sections.register(
            Section("schedule", "schedules/_card.html", 20, views.schedule_section)
        )
        agent_list_sections.register(
            Section("attention", "schedules/_agents_callout.html", 10, views.attention_section)
        )
