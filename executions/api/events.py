from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.access import actor_from_request, require_role
from controlplane.serializers import JSONObjectField, StrictCharField, StrictSerializer
from executions.api.views import IDEMPOTENCY_KEY, RUN_REFUSED, idempotency_key
from executions.event_triggers import event_publish


class EventSerializer(StrictSerializer):
    name = StrictCharField(
        max_length=100, help_text="The event's name; agents list the names they listen to."
    )
    payload = JSONObjectField(default=dict, help_text="The input of every run it starts.")


class TriggeredSerializer(serializers.Serializer[dict[str, Any]]):
    agent_id = serializers.UUIDField()
    agent_name = serializers.CharField()
    execution_id = serializers.UUIDField()
    status = serializers.CharField()
    created = serializers.BooleanField(
        help_text="False: the Idempotency-Key named a run started before."
    )


class RefusedSerializer(serializers.Serializer[dict[str, Any]]):
    agent_id = serializers.UUIDField()
    agent_name = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class EventResultSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField()
    triggered = TriggeredSerializer(many=True)
    refused = RefusedSerializer(many=True, help_text="Subscribed agents that did not start.")
    not_permitted = serializers.IntegerField(
        help_text="Subscribed agents you may not run (not named)."
    )


class EventView(APIView):
    """Publish an event: every active agent subscribed to it runs with the payload."""

    @extend_schema(
        summary="Publish an event: the subscribed agents run with its payload as input",
        description=(
            "Every active agent whose production version has an event trigger listing `name` "
            "and that you may run is triggered (`trigger_source=event`), each through the "
            "usual checks (input schema, policies). With `Idempotency-Key`, publishing the same "
            "event again returns the runs it started the first time."
        ),
        request=EventSerializer,
        responses={202: EventResultSerializer},
        parameters=[IDEMPOTENCY_KEY],
        tags=["executions"],
    )
    def post(self, request: Request) -> Response:
        require_role(actor_from_request(request), "agents.execute_agent", RUN_REFUSED)
        serializer = EventSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fanout = event_publish(
            actor=actor_from_request(request),
            name=serializer.validated_data["name"],
            payload=serializer.validated_data["payload"],
            idempotency_key=idempotency_key(request),
        )
        body: dict[str, Any] = {
            "name": fanout.name,
            "triggered": [
                {
                    "agent_id": agent.pk,
                    "agent_name": agent.name,
                    "execution_id": execution.pk,
                    "status": execution.status,
                    "created": created,
                }
                for agent, execution, created in fanout.triggered
            ],
            "refused": [
                {"agent_id": agent.pk, "agent_name": agent.name, "code": code, "message": message}
                for agent, code, message in fanout.refused
            ],
            "not_permitted": fanout.not_permitted,
        }
        return Response(EventResultSerializer(body).data, status=status.HTTP_202_ACCEPTED)
