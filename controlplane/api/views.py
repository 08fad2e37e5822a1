from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets

from controlplane.access import actor_from_request, can
from controlplane.api.serializers import AuditEventSerializer
from controlplane.errors import Forbidden
from controlplane.filters import AuditEventFilter
from controlplane.models import AuditEvent
from controlplane.selectors import audit_event_list


@extend_schema_view(
    list=extend_schema(summary="The audit log, newest first", tags=["audit"]),
    retrieve=extend_schema(summary="One audit event", tags=["audit"]),
)
class AuditEventViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[AuditEvent]
):
    """Append-only, hash-chained record of every change (``manage.py audit_verify``)."""

    queryset = AuditEvent.objects.none()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> QuerySet[AuditEvent]:
        actor = actor_from_request(self.request)
        if not can(actor, "controlplane.view_auditevent"):
            raise Forbidden("Your role may not read the audit log.")
        return audit_event_list(actor=actor)
