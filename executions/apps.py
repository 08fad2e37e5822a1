from __future__ import annotations

from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    verbose_name = "Executions"

    def ready(self) -> None:
        from approvals.services import approval_settled
        from executions import approval_flow, event_triggers, rollups, services
        from executions.lifecycle import run_moved

        approval_settled.subscribe(approval_flow.run_after_approval)
        run_moved.subscribe(rollups.forget_when_moved)
        run_moved.subscribe(services.release_when_ended)
        run_moved.subscribe(event_triggers.chain_when_ended)
