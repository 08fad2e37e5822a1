from __future__ import annotations

import django_filters

from controlplane.models import AuditEvent


class AuditEventFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter is untyped
    action = django_filters.CharFilter(help_text="Exact action, e.g. agent.promoted")
    action_prefix = django_filters.CharFilter(
        field_name="action", lookup_expr="startswith", help_text="e.g. agent_version."
    )
    actor = django_filters.CharFilter(field_name="actor_label", lookup_expr="icontains")
    actor_type = django_filters.ChoiceFilter(choices=AuditEvent.ActorType.choices)
    target_type = django_filters.CharFilter()
    target_id = django_filters.CharFilter()
    agent = django_filters.UUIDFilter(field_name="agent_id")
    request_id = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = [
            "action",
            "action_prefix",
            "actor",
            "actor_type",
            "target_type",
            "target_id",
            "agent",
            "request_id",
            "since",
            "until",
        ]
