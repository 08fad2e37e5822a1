from __future__ import annotations

import json

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.models import Agent
from agents.selectors import agent_by_ref
from agents.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_webhook
from controlplane.access import Actor
from controlplane.errors import Invalid, Unauthenticated
from controlplane.serializers import JSON_PROBLEMS, json_problem
from executions.api.serializers import ExecutionTriggeredSerializer
from executions.api.views import IDEMPOTENCY_KEY, accepted, idempotency_key
from executions.models import Execution
from executions.trigger import TriggerRequest, execution_trigger


class AgentWebhookView(APIView):
    """Trigger an agent from another system: the JSON body is the input."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Webhook trigger, signed with the agent's webhook secret (HMAC-SHA256)",
        description=(
            f"`{TIMESTAMP_HEADER}: <unix seconds>` and `{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256"
            "(secret, timestamp + '.' + raw body)>`. Older than 5 minutes, or replayed: 401. "
            "The JSON body is the run's input."
        ),
        parameters=[
            OpenApiParameter("ref", str, OpenApiParameter.PATH, description="Agent id or name."),
            OpenApiParameter(TIMESTAMP_HEADER, str, OpenApiParameter.HEADER, required=True),
            OpenApiParameter(SIGNATURE_HEADER, str, OpenApiParameter.HEADER, required=True),
            IDEMPOTENCY_KEY,
        ],
        request={"application/json": {"type": "object"}},
        responses={
            202: ExecutionTriggeredSerializer,
            401: OpenApiResponse(description="Bad signature"),
        },
        auth=[],
        tags=["executions"],
    )
    def post(self, request: Request, ref: str) -> Response:
        agent = _agent(ref)
        body = request.body  # the raw bytes, as signed
        verify_webhook(
            agent,
            timestamp=request.headers.get(TIMESTAMP_HEADER, ""),
            signature=request.headers.get(SIGNATURE_HEADER, ""),
            body=body,
        )
        try:
            value = json.loads(body) if body else {}
        except (ValueError, RecursionError):
            raise Invalid("The body is not JSON.", code="malformed_request") from None
        problem = json_problem(value)
        if problem:
            raise Invalid.field("input", JSON_PROBLEMS[problem], problem)
        result = execution_trigger(
            TriggerRequest(
                actor=Actor.for_system("webhook"),
                agent=agent,
                input=value,
                source=Execution.Source.WEBHOOK,
                idempotency_key=idempotency_key(request),
            )
        )
        return accepted(result)


def _agent(ref: str) -> Agent:
    agent = agent_by_ref(ref)
    if agent is None:
        # Same answer as a bad signature: the endpoint does not tell which agents exist.
        raise Unauthenticated("The signature does not match.")
    return agent
