from __future__ import annotations

from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    verbose_name = "Executions"

    def ready(self) -> None:
        from agents.sections import Section, agent_page_sections
        from approvals.services import approval_settled
        from executions import approval_flow, event_triggers, rollups, services, views
        from executions.lifecycle import run_moved

        approval_settled.subscribe(approval_flow.run_after_approval)
        run_moved.subscribe(rollups.forget_when_moved)
        run_moved.subscribe(services.release_when_ended)
        run_moved.subscribe(event_triggers.chain_when_ended)
        agent_page_sections.register(
            Section("run", "executions/_agent_run.html", 10, views.run_section, after_action=True)
        )
        agent_page_sections.register(
            Section(
                "recent_runs", "executions/_agent_recent_runs.html", 30, views.recent_runs_section
            )
        )
