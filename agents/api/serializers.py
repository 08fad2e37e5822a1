from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import Group, User
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.config import (
    CONFIG_FIELDS,
    VersionConfigSerializer,
    validate_name,
    validate_semver,
    validate_tag,
)
from agents.models import Agent, AgentVersion, Tag
from agents.selectors import ConfigChange, VersionDiff
from controlplane.serializers import StrictCharField, StrictEmailField, StrictSerializer

# --- input ------------------------------------------------------------------------------------


class AgentFieldsSerializer(serializers.Serializer[Any]):
    """The agent's own fields (the rest of a payload is its version's config)."""

    owner_email = StrictEmailField(max_length=255, required=False)
    description = StrictCharField(max_length=10_000, allow_blank=True, required=False)
    tags = serializers.ListField(
        # DRF ignores what a validator returns (these return the value for their other callers).
        child=StrictCharField(max_length=50, validators=[validate_tag]),  # type: ignore[list-item]
        required=False,
        max_length=50,
    )
    team = StrictCharField(
        max_length=150, required=False, allow_null=True, help_text="A group name."
    )
    changelog = StrictCharField(max_length=10_000, allow_blank=True, required=False)


class AgentCreateSerializer(AgentFieldsSerializer, VersionConfigSerializer):
    """Seed 000's "Register New Agent" payload: the agent and its first version's config."""

    # DRF ignores what a validator returns (these return the value for their other callers).
    name = StrictCharField(max_length=100, validators=[validate_name])  # type: ignore[list-item]
    version = StrictCharField(max_length=50, validators=[validate_semver])  # type: ignore[list-item]


class ConfigChangeMixin(VersionConfigSerializer):
    """Config fields checked for their types only: the change, as sent, is merged into a
    stored config and the result validated whole (``agents.config.merge_config``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("partial", True)
        super().__init__(*args, **kwargs)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = {key: value for key, value in attrs.items() if key not in CONFIG_FIELDS}
        attrs["config_change"] = {
            key: value for key, value in self.initial_data.items() if key in CONFIG_FIELDS
        }
        return attrs


class AgentUpdateSerializer(AgentFieldsSerializer, ConfigChangeMixin):
    """The agent's own fields, and a partial change to its draft version's config."""

    version = StrictCharField(
        max_length=50,
        required=False,
        help_text="The draft version to edit; by default the newest draft.",
    )


class VersionCreateSerializer(ConfigChangeMixin):
    """A new draft version: a whole config, or ``clone_from`` another version plus changes."""

    # DRF ignores what a validator returns (this one returns the value for its other callers).
    version = StrictCharField(max_length=50, validators=[validate_semver])  # type: ignore[list-item]
    clone_from = StrictCharField(max_length=50, required=False)
    changelog = StrictCharField(max_length=10_000, allow_blank=True, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        data = kwargs.get("data")
        kwargs["partial"] = bool(isinstance(data, dict) and data.get("clone_from"))
        super().__init__(*args, **kwargs)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not self.partial:
            return VersionConfigSerializer.validate(self, attrs)
        if "version" not in attrs:  # a partial serializer does not enforce required fields
            raise serializers.ValidationError({"version": ["This field is required."]})
        return super().validate(attrs)


class VersionUpdateSerializer(ConfigChangeMixin):
    changelog = StrictCharField(max_length=10_000, allow_blank=True, required=False)


class PromoteSerializer(StrictSerializer):
    version = StrictCharField(
        max_length=50,
        required=False,
        help_text="The version to move one stage forward; by default the staging version, "
        "else the newest draft.",
    )


class DiffQuerySerializer(StrictSerializer):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # "from" is a Python keyword: declare the fields here rather than as attributes.
        return {"from": StrictCharField(max_length=50), "to": StrictCharField(max_length=50)}


# --- output -----------------------------------------------------------------------------------


class AgentVersionSerializer(serializers.ModelSerializer[AgentVersion]):
    version_id = serializers.UUIDField(source="id", read_only=True)
    agent_id = serializers.UUIDField(read_only=True)
    stage = serializers.ChoiceField(choices=AgentVersion.Stage.choices, read_only=True)
    previous_production = serializers.SerializerMethodField()
    created_by = serializers.SlugRelatedField[User](slug_field="username", read_only=True)
    config = serializers.JSONField(read_only=True)

    class Meta:
        model = AgentVersion
        fields = [
            "version_id",
            "agent_id",
            "version",
            "stage",
            "changelog",
            "config",
            "config_hash",
            "previous_production",
            "created_by",
            "created_at",
            "updated_at",
            "stage_changed_at",
        ]
        read_only_fields = fields

    def get_previous_production(self, obj: AgentVersion) -> str | None:
        return obj.previous_production.version if obj.previous_production is not None else None


class AgentSerializer(serializers.ModelSerializer[Agent]):
    agent_id = serializers.UUIDField(source="id", read_only=True)
    status = serializers.ChoiceField(choices=Agent.Status.choices, read_only=True)
    owner = serializers.SlugRelatedField[User](slug_field="username", read_only=True)
    team = serializers.SlugRelatedField[Group](slug_field="name", read_only=True)
    tags = serializers.SlugRelatedField[Tag](slug_field="name", many=True, read_only=True)
    production_version = serializers.SlugRelatedField[AgentVersion](
        slug_field="version", read_only=True
    )
    staging_version = serializers.SlugRelatedField[AgentVersion](
        slug_field="version", read_only=True
    )
    created_by = serializers.SlugRelatedField[User](slug_field="username", read_only=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = Agent
        fields = [
            "agent_id",
            "name",
            "description",
            "status",
            "owner",
            "owner_email",
            "team",
            "tags",
            "production_version",
            "staging_version",
            "created_by",
            "created_at",
            "updated_at",
            "archived_at",
            "links",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_links(self, obj: Agent) -> dict[str, str]:
        return {
            "self": reverse("api:agent-detail", args=[obj.pk]),
            "versions": reverse("api:agent-versions", args=[obj.pk]),
            "page": reverse("agents:detail", args=[obj.name]),
        }


class AgentDetailSerializer(AgentSerializer):
    versions = serializers.SerializerMethodField()

    class Meta(AgentSerializer.Meta):
        fields = [*AgentSerializer.Meta.fields, "versions"]
        read_only_fields = fields

    @extend_schema_field(AgentVersionSerializer(many=True))
    def get_versions(self, obj: Agent) -> list[dict[str, Any]]:
        from agents.selectors import agent_versions

        # many=True makes a ListSerializer, whose data is a list (the stubs see one object).
        return cast(
            "list[dict[str, Any]]",
            AgentVersionSerializer(agent_versions(agent=obj), many=True).data,
        )


class ConfigChangeSerializer(serializers.Serializer[ConfigChange]):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {
            "field": serializers.CharField(help_text="Dotted path in the config, e.g. llm.model"),
            "change": serializers.ChoiceField(choices=["added", "removed", "changed"]),
            "from": serializers.JSONField(allow_null=True),
            "to": serializers.JSONField(allow_null=True),
        }


class VersionDiffSerializer(serializers.Serializer[VersionDiff]):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {
            "from": serializers.CharField(),
            "to": serializers.CharField(),
            "identical": serializers.BooleanField(),
            "changes": ConfigChangeSerializer(many=True),
        }
