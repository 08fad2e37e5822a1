from __future__ import annotations

from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    name = "policies"
    verbose_name = "Policies"

    def ready(self) -> None:
        from agents.services import agent_tags_changed
        from policies.services import policy_index_follow_tags

        agent_tags_changed.subscribe(policy_index_follow_tags)
