from __future__ import annotations

from rest_framework import serializers

from controlplane.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "seq",
            "created_at",
            "actor_type",
            "actor_user_id",
            "actor_label",
            "action",
            "target_type",
            "target_id",
            "target_repr",
            "agent_id",
            "before",
            "after",
            "request_id",
            "ip",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields
