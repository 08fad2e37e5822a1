"""One FilterSet for the approvals API and the approvals page."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet

from agents.selectors import agent_ref_q
from approvals.models import ApprovalRequest
from approvals.selectors import assigned_q
from controlplane.access import actor_from_request


class ApprovalFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter is untyped
    """Give it the request (``assigned=me`` is about its user) and a queryset from
    ``approvals.selectors`` (``assigned`` needs its ``approvers_text`` annotation)."""

    status = django_filters.MultipleChoiceFilter(
        choices=ApprovalRequest.Status.choices,
        help_text="One or more statuses: repeated, or comma-separated.",
    )
    agent = django_filters.CharFilter(method="filter_agent", help_text="Agent id or name.")
    risk = django_filters.MultipleChoiceFilter(
        field_name="risk_level",
        choices=ApprovalRequest.Risk.choices,
        help_text="One or more risk levels: repeated, or comma-separated.",
    )
    action = django_filters.CharFilter(help_text='"execute", or a tool action (send_email …).')
    execution = django_filters.UUIDFilter(field_name="execution_id", help_text="Execution id.")
    assigned = django_filters.ChoiceFilter(
        choices=[("me", "me")],
        method="filter_assigned",
        help_text='"me": the requests that list the caller (by e-mail or group) as an approver.',
    )

    class Meta:
        model = ApprovalRequest
        fields = ["status", "agent", "risk", "action", "execution", "assigned"]

    def __init__(self, data: Any = None, *args: Any, **kwargs: Any) -> None:
        if hasattr(data, "getlist"):  # status=a,b as well as repeats, as for executions
            data = data.copy()
            for name in ("status", "risk"):
                if name in data:
                    data.setlist(
                        name,
                        [part for value in data.getlist(name) for part in value.split(",") if part],
                    )
        super().__init__(data, *args, **kwargs)

    def filter_agent(
        self, queryset: QuerySet[ApprovalRequest], name: str, value: str
    ) -> QuerySet[ApprovalRequest]:
        return queryset.filter(agent_ref_q(value, "agent__"))

    def filter_assigned(
        self, queryset: QuerySet[ApprovalRequest], name: str, value: str
    ) -> QuerySet[ApprovalRequest]:
        return queryset.filter(assigned_q(actor_from_request(self.request).user))
