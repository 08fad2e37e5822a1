from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.api.views import REF
from agents.selectors import agent_for_run
from controlplane.access import Actor, actor_from_request, require_role
from controlplane.api.pagination import NewestFirstCursorPagination, PagePagination
from controlplane.errors import Invalid, Unauthenticated, error_body
from executions import selectors, services
from executions.api.serializers import (
    ExecutionDetailSerializer,
    ExecutionLogSerializer,
    ExecutionSerializer,
    ExecutionTriggeredSerializer,
    ExecutionTriggerSerializer,
    ReportSerializer,
    RunSerializer,
    execution_links,
)
from executions.filters import ExecutionFilter
from executions.models import Execution, ExecutionLog
from executions.trigger import TriggerRequest, TriggerResult, execution_trigger

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="The same key for the same agent returns the first execution instead of "
    "starting another (up to 200 printable characters).",
)
ACCEPTED = {202: ExecutionTriggeredSerializer}
# A role that may run no agent hears it before its body is validated.
RUN_REFUSED = "Your role may not run agents."


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > 200 or not key.isprintable():
        raise Invalid.field("Idempotency-Key", "1 to 200 printable characters.", "invalid")
    return key


REFUSED: dict[str, tuple[int, str]] = {
    Execution.Status.BLOCKED: (status.HTTP_403_FORBIDDEN, "blocked_by_policy"),
    Execution.Status.RATE_LIMITED: (status.HTTP_429_TOO_MANY_REQUESTS, "rate_limited"),
}


def accepted(result: TriggerResult) -> Response:
    """202 with the execution in ExecutionTriggeredSerializer's shape, built directly (the
    trigger path is hot); a replayed Idempotency-Key gets the same answer, marked. A run a
    policy refused is recorded all the same, and answered 403 (blocked) or 429 (rate
    limited) in the error envelope, naming the policy and the execution."""
    execution = result.execution
    body = {
        "execution_id": str(execution.pk),
        "agent_id": str(execution.agent_id),
        "agent_name": execution.agent.name,
        "agent_version": execution.agent_version.version,
        "is_staging": execution.is_staging,
        "status": execution.status,
        "trigger_source": execution.trigger_source,
        "created_at": execution.created_at,
        "links": execution_links(execution),
    }
    headers = {} if result.created else {"Idempotent-Replayed": "true"}
    if execution.status in REFUSED:
        code_status, code = REFUSED[execution.status]
        deciding: dict[str, Any] = next(
            (
                entry
                for entry in execution.policy_trace
                if entry["verdict"] in ("deny", "rate_limited")
            ),
            {},
        )
        details = {
            **body,
            "policy": deciding.get("policy_name"),
            "policy_trace": execution.policy_trace,
        }
        return Response(
            error_body(code, execution.error_message, details), status=code_status, headers=headers
        )
    return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)


def trigger(request: Request, *, agent_ref: str, data: dict[str, Any], source: str) -> Response:
    """The API's triggers (``/executions/trigger`` and ``/agents/{id}/execute``)."""
    actor = actor_from_request(request)
    agent = agent_for_run(actor=actor, ref=agent_ref)
    result = execution_trigger(
        TriggerRequest(
            actor=actor,
            agent=agent,
            input=data.get("input", {}),
            version=data.get("version"),
            source=source,
            idempotency_key=idempotency_key(request),
            complexity=data.get("complexity"),
        )
    )
    return accepted(result)


@extend_schema_view(
    list=extend_schema(summary="List executions (newest first, cursor pagination)"),
    retrieve=extend_schema(summary="One execution: seed 000's execution log response"),
)
class ExecutionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Execution]
):
    queryset = Execution.objects.none()
    serializer_class = ExecutionDetailSerializer
    filterset_class = ExecutionFilter
    pagination_class = NewestFirstCursorPagination
    lookup_value_regex = "[^/]+"  # a malformed id is execution_not_found, as an unknown one

    @property
    def actor(self) -> Actor:
        return actor_from_request(self.request)

    def get_queryset(self) -> QuerySet[Execution]:
        executions = selectors.execution_list_for(actor=self.actor)
        if self.action == "retrieve":
            return executions.prefetch_related("steps", "actions")
        return executions

    def get_serializer_class(self) -> type[ExecutionSerializer]:
        return ExecutionSerializer if self.action == "list" else ExecutionDetailSerializer

    def get_object(self) -> Execution:
        return selectors.execution_get(actor=self.actor, pk=self.kwargs["pk"])

    def retrieve(self, request: Request, pk: str) -> Response:
        execution = self.get_queryset().filter(pk=self.get_object().pk).get()
        return Response(ExecutionDetailSerializer(execution).data)

    @extend_schema(
        summary="Trigger an agent (202 with the execution)",
        request=ExecutionTriggerSerializer,
        responses=ACCEPTED,
        parameters=[IDEMPOTENCY_KEY],
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="trigger",
        filter_backends=[],
        pagination_class=None,
    )
    def trigger(self, request: Request) -> Response:
        require_role(actor_from_request(request), "agents.execute_agent", RUN_REFUSED)
        serializer = ExecutionTriggerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return trigger(
            request,
            agent_ref=serializer.validated_data["agent"],
            data=serializer.validated_data,
            source=Execution.Source.API,
        )

    @extend_schema(
        summary="Cancel: at once if it has not started; a running one stops before its next step",
        request=None,
        responses={200: ExecutionSerializer, 202: ExecutionSerializer},
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def cancel(self, request: Request, pk: str) -> Response:
        execution = services.execution_cancel(actor=self.actor, execution=self.get_object())
        code = (
            status.HTTP_202_ACCEPTED
            if execution.status == Execution.Status.RUNNING
            else status.HTTP_200_OK
        )
        return Response(ExecutionSerializer(execution).data, status=code)

    @extend_schema(summary="The run's log lines", responses=ExecutionLogSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=PagePagination)
    def logs(self, request: Request, pk: str) -> Response:
        execution = self.get_object()
        # The stubs type the pagination by the viewset's model: these are the run's log lines.
        logs = execution.logs.order_by("at", "id")
        page: list[ExecutionLog] | None = self.paginate_queryset(logs)  # type: ignore[arg-type]
        return self.get_paginated_response(ExecutionLogSerializer(page, many=True).data)

    @extend_schema(
        summary="The report of an external runtime (n8n), authenticated by the execution's token",
        description="Send the per-execution token the workflow received as "
        "`Authorization: Bearer <token>` (or `X-Execution-Token`). A finished execution: 409.",
        request=ReportSerializer,
        responses={200: ExecutionSerializer, 401: OpenApiResponse(description="Bad token")},
        auth=[],
    )
    @action(
        detail=True,
        methods=["post"],
        authentication_classes=[],
        permission_classes=[AllowAny],
        filter_backends=[],
        pagination_class=None,
    )
    def report(self, request: Request, pk: str) -> Response:
        execution = selectors.execution_for_report(pk=pk)
        header = request.headers.get("Authorization", "")
        token = (
            header[7:]
            if header[:7].lower() == "bearer "
            else request.headers.get("X-Execution-Token", "")
        )
        if execution is None or not services.callback_token_valid(execution, token.strip()):
            raise Unauthenticated("A valid execution token is needed.")
        serializer = ReportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        finished = services.execution_report(execution=execution, data=serializer.validated_data)
        return Response(ExecutionSerializer(finished).data)


# POST /agents/{ref}/execute: under the agent registry's URL (its docstring is the API's
# description of the resource).
class AgentExecuteView(APIView):
    """The agent registry (seed 000, "Agent Management")."""

    @extend_schema(
        summary="Run the agent (202 with the execution)",
        parameters=[REF, IDEMPOTENCY_KEY],
        request=RunSerializer,
        responses={202: ExecutionTriggeredSerializer},
        tags=["executions"],
        operation_id="agents_execute_create",
    )
    def post(self, request: Request, ref: str) -> Response:
        require_role(actor_from_request(request), "agents.execute_agent", RUN_REFUSED)
        serializer = RunSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return trigger(
            request, agent_ref=ref, data=serializer.validated_data, source=Execution.Source.API
        )
