"""One FilterSet for the policies API and the policies page.

``agent`` names an agent by id or name; one the user may not see, or that does not exist, is a
400 validation error on ``agent`` (code ``agent_not_found``), whatever characters it holds.
"""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from agents.models import Agent
from agents.selectors import agent_get
from controlplane.access import actor_from_request
from controlplane.errors import NotFound
from policies.models import Policy
from policies.selectors import policies_applying_to


class PolicyFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter has no types
    """Give it the request: ``agent`` is looked up among the agents its user may see."""

    type = django_filters.ChoiceFilter(
        field_name="policy_type", choices=Policy.Type.choices, help_text="The policy type."
    )
    scope = django_filters.ChoiceFilter(
        field_name="applies_to", choices=Policy.Scope.choices, help_text="all, agent or tag."
    )
    enabled = django_filters.BooleanFilter()
    agent = django_filters.CharFilter(
        method="filter_agent",
        help_text="Agent id or name: the policies that apply to it (for all agents, for it, "
        "or for one of its tags).",
    )
    tag = django_filters.CharFilter(
        field_name="target_tags__name", distinct=True, help_text="Policies for this tag."
    )

    class Meta:
        model = Policy
        fields = ["type", "scope", "enabled", "agent", "tag"]

    _resolved: Agent | None  # the ``agent`` filter's agent, once looked up

    def is_valid(self) -> bool:
        # An agent the user may not see is an error on the filter, as an unknown one is. The
        # ref goes in as a parameter, never into the message itself: django-filter formats
        # the message with its params (a ``%`` in the ref would be a format directive).
        valid: bool = super().is_valid()
        ref = self.form.cleaned_data.get("agent") if valid else None
        if ref and self._agent() is None:
            self.form.add_error(
                "agent",
                ValidationError(
                    "No agent %(ref)s.", code="agent_not_found", params={"ref": repr(ref)}
                ),
            )
            return False
        return valid

    def _agent(self) -> Agent | None:
        if not hasattr(self, "_resolved"):
            ref = self.form.cleaned_data.get("agent")
            try:
                self._resolved = agent_get(actor=actor_from_request(self.request), ref=ref)
            except NotFound:
                self._resolved = None
        return self._resolved

    def filter_agent(self, queryset: QuerySet[Policy], name: str, value: str) -> QuerySet[Policy]:
        agent = self._agent()
        return queryset.none() if agent is None else policies_applying_to(queryset, agent=agent)
