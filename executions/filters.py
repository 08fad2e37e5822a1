"""One FilterSet for the executions API and the executions page."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet

from agents.selectors import agent_ref_q
from executions.models import Execution


class ExecutionFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter is untyped
    agent = django_filters.CharFilter(method="filter_agent", help_text="Agent id or name.")
    status = django_filters.MultipleChoiceFilter(choices=Execution.Status.choices)
    trigger_source = django_filters.ChoiceFilter(choices=Execution.Source.choices)
    version = django_filters.CharFilter(field_name="agent_version__version")
    error_type = django_filters.CharFilter(help_text="Why a run failed, e.g. llm_timeout.")
    is_staging = django_filters.BooleanFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Execution
        fields = [
            "agent",
            "status",
            "trigger_source",
            "version",
            "error_type",
            "is_staging",
            "created_after",
            "created_before",
        ]

    def __init__(self, data: Any = None, *args: Any, **kwargs: Any) -> None:
        if hasattr(data, "getlist") and "status" in data:  # status=a,b as well as repeats
            data = data.copy()
            data.setlist(
                "status",
                [part for value in data.getlist("status") for part in value.split(",") if part],
            )
        super().__init__(data, *args, **kwargs)

    def filter_agent(
        self, queryset: QuerySet[Execution], name: str, value: str
    ) -> QuerySet[Execution]:
        return queryset.filter(agent_ref_q(value, "agent__"))
