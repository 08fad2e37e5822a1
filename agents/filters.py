"""One FilterSet for the agents API and the agents page."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import django_filters
from django.db.models import Q, QuerySet

from agents.models import Agent

if TYPE_CHECKING:
    from django.utils.datastructures import MultiValueDict


class AgentFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter has no types
    status = django_filters.MultipleChoiceFilter(
        choices=Agent.Status.choices,
        help_text="Repeat or comma-separate. Archived agents are listed only when asked for.",
    )
    tag = django_filters.CharFilter(field_name="tags__name", help_text="Agents with this tag.")
    owner = django_filters.CharFilter(
        method="filter_owner", help_text="Owner e-mail, or the owning user's username."
    )
    team = django_filters.CharFilter(field_name="team__name")
    q = django_filters.CharFilter(
        method="filter_text", help_text="Text in name, description, owner."
    )

    class Meta:
        model = Agent
        fields = ["status", "tag", "owner", "team", "q"]

    def __init__(self, data: Mapping[str, Any] | None = None, *args: Any, **kwargs: Any) -> None:
        if hasattr(data, "getlist"):  # a QueryDict: accept status=a,b as well as repeats
            query = cast("MultiValueDict[str, str]", data)
            if "status" in query:
                data = query = query.copy()
                values = query.getlist("status")
                query.setlist(
                    "status", [part for value in values for part in value.split(",") if part]
                )
        super().__init__(data, *args, **kwargs)

    def filter_queryset(self, queryset: QuerySet[Agent]) -> QuerySet[Agent]:
        queryset = super().filter_queryset(queryset)
        if not self.form.cleaned_data.get("status"):
            queryset = queryset.exclude(status=Agent.Status.ARCHIVED)
        return queryset

    def filter_owner(self, queryset: QuerySet[Agent], name: str, value: str) -> QuerySet[Agent]:
        return queryset.filter(Q(owner_email__iexact=value) | Q(owner__username=value))

    def filter_text(self, queryset: QuerySet[Agent], name: str, value: str) -> QuerySet[Agent]:
        return queryset.filter(
            Q(name__icontains=value)
            | Q(description__icontains=value)
            | Q(owner_email__icontains=value)
        )
