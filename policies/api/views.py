from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents.selectors import agent_get
from controlplane.access import Actor, actor_from_request, require_role
from policies import selectors, services
from policies.api.serializers import (
    DecisionSerializer,
    EvaluateSerializer,
    PolicySerializer,
    PolicyUpdateSerializer,
    PolicyWriteSerializer,
)
from policies.filters import PolicyFilter
from policies.models import Policy

POLICY_ID = OpenApiParameter("id", str, OpenApiParameter.PATH, description="The policy's id.")


@extend_schema_view(
    list=extend_schema(summary="List policies (in evaluation order: priority, then name)"),
    retrieve=extend_schema(summary="Get a policy", parameters=[POLICY_ID]),
    destroy=extend_schema(summary="Delete a policy", parameters=[POLICY_ID]),
)
class PolicyViewSet(viewsets.GenericViewSet[Policy]):
    """Policies (seed 000, "Policy Management"): every role that may view policies reads
    them all; who may write is decided by ``policies.services``."""

    queryset = Policy.objects.none()
    serializer_class = PolicySerializer
    filterset_class = PolicyFilter
    lookup_value_regex = "[^/]+"

    @property
    def actor(self) -> Actor:
        return actor_from_request(self.request)

    def get_queryset(self) -> QuerySet[Policy]:
        return selectors.policy_list(actor=self.actor)

    def get_object(self) -> Policy:
        return selectors.policy_get(actor=self.actor, pk=self.kwargs["pk"])

    def _detail(self, policy: Policy, status_code: int = status.HTTP_200_OK) -> Response:
        policy = selectors.policy_get(actor=self.actor, pk=policy.pk)
        return Response(PolicySerializer(policy).data, status=status_code)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(PolicySerializer(page, many=True).data)

    @extend_schema(
        summary="Create a policy",
        request=PolicyWriteSerializer,
        responses={201: PolicySerializer},
    )
    def create(self, request: Request) -> Response:
        require_role(self.actor, "policies.add_policy", "Your role may not change policies.")
        serializer = PolicyWriteSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        policy = services.policy_create(actor=self.actor, data=serializer.validated_data)
        return self._detail(policy, status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(PolicySerializer(self.get_object()).data)

    @extend_schema(
        summary="Change some fields of a policy",
        parameters=[POLICY_ID],
        request=PolicyUpdateSerializer,
        responses=PolicySerializer,
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        policy = self.get_object()
        serializer = PolicyUpdateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        policy = services.policy_update(
            actor=self.actor, policy=policy, data=serializer.validated_data
        )
        return self._detail(policy)

    def destroy(self, request: Request, pk: str) -> Response:
        services.policy_delete(actor=self.actor, policy=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _set_enabled(self, enabled: bool) -> Response:
        policy = services.policy_set_enabled(
            actor=self.actor, policy=self.get_object(), enabled=enabled
        )
        return self._detail(policy)

    @extend_schema(
        summary="Enable a policy", parameters=[POLICY_ID], request=None, responses=PolicySerializer
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def enable(self, request: Request, pk: str) -> Response:
        return self._set_enabled(True)

    @extend_schema(
        summary="Disable a policy (the engine ignores it)",
        parameters=[POLICY_ID],
        request=None,
        responses=PolicySerializer,
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def disable(self, request: Request, pk: str) -> Response:
        return self._set_enabled(False)

    @extend_schema(
        summary="Dry run: what would happen if this agent ran now, and why (creates nothing)",
        request=EvaluateSerializer,
        responses=DecisionSerializer,
    )
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def evaluate(self, request: Request) -> Response:
        serializer = EvaluateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        decision = selectors.policy_dry_run(
            actor=self.actor,
            agent=agent_get(actor=self.actor, ref=data["agent"]),
            input=data["input"],
            at=data.get("at"),
            action=data["action"],
            destination=data.get("destination"),
            target=data.get("target", ""),
            complexity=data.get("complexity"),
        )
        return Response(decision)
