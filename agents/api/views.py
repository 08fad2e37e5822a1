from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents import selectors, services
from agents.api.serializers import (
    AgentCreateSerializer,
    AgentDetailSerializer,
    AgentSerializer,
    AgentUpdateSerializer,
    AgentVersionSerializer,
    DiffQuerySerializer,
    PromoteSerializer,
    VersionCreateSerializer,
    VersionDiffSerializer,
    VersionUpdateSerializer,
)
from agents.filters import AgentFilter
from agents.models import Agent, AgentVersion
from agents.webhooks import agent_webhook_secret_rotate, webhook_instructions
from controlplane.access import Actor, actor_from_request, can, require_role
from controlplane.errors import Forbidden

REF = OpenApiParameter(
    "ref", str, OpenApiParameter.PATH, description="The agent's id (UUID) or its name."
)


@extend_schema_view(
    list=extend_schema(summary="List agents", responses=AgentSerializer(many=True)),
    retrieve=extend_schema(summary="Get an agent with its versions", parameters=[REF]),
    destroy=extend_schema(
        summary="Delete an agent (soft: archived, hidden from lists, still auditable)",
        parameters=[REF],
        responses={204: None},
    ),
)
# Other apps' endpoints under /agents/{ref}/ are their own views, routed beside this one:
# execute (executions.api.views), schedule (schedules.api).
class AgentViewSet(viewsets.GenericViewSet[Agent]):
    """The agent registry (seed 000, "Agent Management")."""

    queryset = Agent.objects.none()
    serializer_class = AgentDetailSerializer
    filterset_class = AgentFilter
    lookup_field = "ref"
    lookup_value_regex = "[^/]+"

    @property
    def actor(self) -> Actor:
        return actor_from_request(self.request)

    def get_queryset(self) -> QuerySet[Agent]:
        return selectors.agent_list(actor=self.actor)

    def get_object(self, perm: str = "agents.view_agent") -> Agent:
        return selectors.agent_get(actor=self.actor, ref=self.kwargs["ref"], perm=perm)

    def _detail(self, agent: Agent, status_code: int = status.HTTP_200_OK) -> Response:
        agent = selectors.agent_get(actor=self.actor, ref=str(agent.pk))
        return Response(AgentDetailSerializer(agent).data, status=status_code)

    def list(self, request: Request) -> Response:
        if not can(self.actor, "agents.view_agent"):
            raise Forbidden("Your role may not list agents.")
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(AgentSerializer(page, many=True).data)

    @extend_schema(
        summary="Register an agent (or a new version of an agent you may change)",
        request=AgentCreateSerializer,
        responses={201: AgentDetailSerializer},
    )
    def create(self, request: Request) -> Response:
        require_role(self.actor, "agents.add_agent", "Your role may not register agents.")
        serializer = AgentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent, _ = services.agent_create(actor=self.actor, data=serializer.validated_data)
        return self._detail(agent, status.HTTP_201_CREATED)

    def retrieve(self, request: Request, ref: str) -> Response:
        return Response(AgentDetailSerializer(self.get_object()).data)

    @extend_schema(
        summary="Edit the agent and its draft version (409 if the version has left draft)",
        parameters=[REF],
        request=AgentUpdateSerializer,
        responses=AgentDetailSerializer,
    )
    def partial_update(self, request: Request, ref: str) -> Response:
        agent = self.get_object("agents.change_agent")
        serializer = AgentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.agent_update(actor=self.actor, agent=agent, data=serializer.validated_data)
        return self._detail(agent)

    def destroy(self, request: Request, ref: str) -> Response:
        agent = self.get_object("agents.delete_agent")
        services.agent_transition(actor=self.actor, agent=agent, action="archive")
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _transition(self, name: str) -> Response:
        agent = self.get_object("agents.change_agent")
        services.agent_transition(actor=self.actor, agent=agent, action=name)
        return self._detail(agent)

    @extend_schema(summary="Activate (needs a production version)", parameters=[REF], request=None)
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, ref: str) -> Response:
        return self._transition("activate")

    @extend_schema(summary="Pause: no new runs until activated", parameters=[REF], request=None)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, ref: str) -> Response:
        return self._transition("pause")

    @extend_schema(summary="Deprecate: no new runs; archive next", parameters=[REF], request=None)
    @action(detail=True, methods=["post"])
    def deprecate(self, request: Request, ref: str) -> Response:
        return self._transition("deprecate")

    @extend_schema(
        summary="Promote a version one stage: draft → staging → production",
        parameters=[REF],
        request=PromoteSerializer,
    )
    @action(detail=True, methods=["post"])
    def promote(self, request: Request, ref: str) -> Response:
        agent = self.get_object("agents.change_agent")
        serializer = PromoteSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        services.agent_version_promote(
            actor=self.actor, agent=agent, version=serializer.validated_data.get("version")
        )
        return self._detail(agent)

    @extend_schema(
        summary="Roll production back to the previous production version",
        parameters=[REF],
        request=None,
    )
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, ref: str) -> Response:
        agent = self.get_object("agents.change_agent")
        services.agent_rollback(actor=self.actor, agent=agent)
        return self._detail(agent)

    @extend_schema(
        methods=["GET"],
        summary="List the agent's versions",
        parameters=[REF],
        responses=AgentVersionSerializer(many=True),
    )
    @extend_schema(
        methods=["POST"],
        summary="Create a draft version, from a config or cloned from another version",
        parameters=[REF],
        request=VersionCreateSerializer,
        responses={201: AgentVersionSerializer},
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[])
    def versions(self, request: Request, ref: str) -> Response:
        if request.method == "GET":
            agent = self.get_object()
            versions = selectors.agent_versions(agent=agent)
            # The viewset's model is the agent: its stubs do not expect another model's page.
            page: list[AgentVersion] | None = self.paginate_queryset(versions)  # type: ignore[arg-type]
            return self.get_paginated_response(AgentVersionSerializer(page, many=True).data)
        agent = self.get_object("agents.change_agent")
        serializer = VersionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = services.agent_version_create(
            actor=self.actor,
            agent=agent,
            version=data["version"],
            config=data.get("config"),
            clone_from=data.get("clone_from"),
            change=data.get("config_change"),
            changelog=data.get("changelog", ""),
        )
        return Response(AgentVersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        methods=["GET"],
        summary="Get one version",
        parameters=[REF],
        responses=AgentVersionSerializer,
    )
    @extend_schema(
        methods=["PATCH"],
        summary="Edit a draft version (409 once it has left draft)",
        parameters=[REF],
        request=VersionUpdateSerializer,
        responses=AgentVersionSerializer,
    )
    @action(
        detail=True,
        methods=["get", "patch"],
        url_path=r"versions/(?P<version>[^/]+)",
        filter_backends=[],
    )
    def version_detail(self, request: Request, ref: str, version: str) -> Response:
        if request.method == "GET":
            found = selectors.agent_version_get(agent=self.get_object(), version=version)
            return Response(AgentVersionSerializer(found).data)
        agent = self.get_object("agents.change_agent")
        found = selectors.agent_version_get(agent=agent, version=version)
        serializer = VersionUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        updated = services.agent_version_update(
            actor=self.actor,
            version=found,
            change=serializer.validated_data["config_change"],
            changelog=serializer.validated_data.get("changelog"),
        )
        return Response(AgentVersionSerializer(updated).data)

    @extend_schema(
        summary="Rotate the webhook secret (shown once; the old one stops working)",
        parameters=[REF],
        request=None,
        responses=inline_serializer(
            "WebhookSecret",
            {
                "secret": serializers.CharField(),
                "url": serializers.CharField(),
                "headers": serializers.DictField(),
            },
        ),
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="webhook-secret",
        filter_backends=[],
        pagination_class=None,
    )
    def webhook_secret(self, request: Request, ref: str) -> Response:
        agent = self.get_object("agents.change_agent")
        secret = agent_webhook_secret_rotate(actor=self.actor, agent=agent)
        return Response(webhook_instructions(request, agent, secret))

    @extend_schema(
        summary="Field-by-field differences between two versions' configs",
        parameters=[
            REF,
            OpenApiParameter("from", str, required=True, description="The older version"),
            OpenApiParameter("to", str, required=True, description="The newer version"),
        ],
        responses=VersionDiffSerializer,
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def diff(self, request: Request, ref: str) -> Response:
        agent = self.get_object()
        query = DiffQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        older = selectors.agent_version_get(agent=agent, version=query.validated_data["from"])
        newer = selectors.agent_version_get(agent=agent, version=query.validated_data["to"])
        return Response(selectors.agent_version_diff(older=older, newer=newer))
