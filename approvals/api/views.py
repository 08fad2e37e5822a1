from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from approvals import selectors, services
from approvals.api.serializers import ApprovalSerializer, DecideSerializer
from approvals.filters import ApprovalFilter
from approvals.models import ApprovalRequest
from controlplane.access import Actor, actor_from_request, can
from controlplane.errors import Forbidden

APPROVAL_ID = OpenApiParameter(
    "id", str, OpenApiParameter.PATH, description="The approval request's id."
)


@extend_schema_view(
    list=extend_schema(
        summary="List approval requests (pending first, expiring soonest; then newest)",
        responses=ApprovalSerializer(many=True),
    ),
    retrieve=extend_schema(
        summary="Get an approval request, with its decisions and whether you may decide it",
        parameters=[APPROVAL_ID],
    ),
)
class ApprovalViewSet(viewsets.GenericViewSet[ApprovalRequest]):
    """The approval queue (seed 000, "Approval Workflows"): admins see every request;
    others those of agents they may view and those that list them as an approver. The
    listed approvers (and admins) decide, never the user who triggered the run unless the
    policy allows self-approval."""

    queryset = ApprovalRequest.objects.none()
    serializer_class = ApprovalSerializer
    filterset_class = ApprovalFilter
    lookup_value_regex = "[^/]+"

    @property
    def actor(self) -> Actor:
        return actor_from_request(self.request)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # A role without approvals (a service account) is told so, not shown an empty queue.
        if not can(self.actor, "approvals.view_approvalrequest"):
            raise Forbidden("Your role may not read approval requests.")

    def get_queryset(self) -> QuerySet[ApprovalRequest]:
        return selectors.approval_list(actor=self.actor).prefetch_related("decisions")

    def get_object(self) -> ApprovalRequest:
        return selectors.approval_get(actor=self.actor, pk=self.kwargs["pk"])

    def _detail(self, approval: ApprovalRequest) -> Response:
        return Response(ApprovalSerializer(approval, context={"actor": self.actor}).data)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        data = ApprovalSerializer(page, many=True, context={"actor": self.actor}).data
        return self.get_paginated_response(data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return self._detail(self.get_object())

    def _decide(self, request: Request, verdict: str) -> Response:
        approval = self.get_object()
        serializer = DecideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        decided = services.approval_decide(
            actor=self.actor,
            request=approval,
            verdict=verdict,
            notes=serializer.validated_data["notes"],
        )
        # Read again: the decisions, and the run's status the outcome moved.
        return self._detail(selectors.approval_get(actor=self.actor, pk=decided.pk))

    @extend_schema(
        summary="Approve (settles it when it is the last approval needed)",
        description="403 for who may not decide it (not an approver, the run's own trigger "
        "without self-approval, a read-only role); 409 when it is no longer pending or you "
        "already decided it (`details.status` is its status).",
        parameters=[APPROVAL_ID],
        request=DecideSerializer,
        responses=ApprovalSerializer,
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def approve(self, request: Request, pk: str) -> Response:
        return self._decide(request, "approve")

    @extend_schema(
        summary="Reject (settles it: a run waiting to start is cancelled, a tool call refused)",
        description="403 and 409 as for approve.",
        parameters=[APPROVAL_ID],
        request=DecideSerializer,
        responses=ApprovalSerializer,
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def reject(self, request: Request, pk: str) -> Response:
        return self._decide(request, "reject")
