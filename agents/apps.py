from __future__ import annotations

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from agents.selectors import agent_ids_visible
        from controlplane.selectors import visible_agent_ids

        visible_agent_ids.provide(agent_ids_visible)
