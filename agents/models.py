from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from controlplane.errors import Conflict
from controlplane.models import AuditTarget, Authored


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Agent(Authored):
    """An agent's identity and lifecycle; its behaviour lives in its versions.

    ::

        draft ──activate──► active ◄──activate── paused
                              └──────pause──────►  │
        active | paused ──deprecate──► deprecated  │
        any ──delete (soft)──► archived ◄──────────┘

    Only an active agent with a production version runs.
    """

    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        PAUSED = "paused"
        DEPRECATED = "deprecated"
        ARCHIVED = "archived"

    # action -> (states it may start from, state it leads to)
    TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
        "activate": (frozenset({Status.DRAFT, Status.PAUSED}), Status.ACTIVE),
        "pause": (frozenset({Status.ACTIVE}), Status.PAUSED),
        "deprecate": (frozenset({Status.ACTIVE, Status.PAUSED}), Status.DEPRECATED),
        "archive": (
            frozenset({Status.DRAFT, Status.ACTIVE, Status.PAUSED, Status.DEPRECATED}),
            Status.ARCHIVED,
        ),
    }

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_agents",
    )
    owner_email = models.EmailField(max_length=255, db_index=True)
    team = models.ForeignKey(
        Group,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="agents",
        help_text="This group's members may see, change and run the agent.",
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="agents")
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    production_version = models.ForeignKey(
        "AgentVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    staging_version = models.ForeignKey(
        "AgentVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The secret that signs webhook triggers, encrypted with the vault key; rotated from the
    # agent page or the API, shown once.
    webhook_secret_ciphertext = models.TextField(blank=True, editable=False)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        permissions = [("execute_agent", "Can run the agent")]

    def __str__(self) -> str:
        return self.name

    def audit_target(self) -> AuditTarget:
        return AuditTarget("agent", self.pk, self.name, self.pk)

    def next_status(self, action: str) -> str:
        """The status ``action`` leads to; ``Conflict`` if it cannot start from here."""
        sources, target = self.TRANSITIONS[action]
        if self.status not in sources:
            raise Conflict(
                f"Cannot {action} agent {self.name!r}: it is {self.status}.",
                code="invalid_transition",
                details={"status": self.status, "action": action},
            )
        return target

    @property
    def is_runnable(self) -> bool:
        return self.status == self.Status.ACTIVE and self.production_version_id is not None


class AgentVersion(Authored):
    """The behaviour of an agent, immutable once it leaves draft.

    ::

        draft ──promote──► staging ──promote──► production ──(newer production)──► retired
                              └──(newer staging)──► retired
        production ──rollback──► retired, and its previous_production ──► production
    """

    class Stage(models.TextChoices):
        DRAFT = "draft"
        STAGING = "staging"
        PRODUCTION = "production"
        RETIRED = "retired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=50)
    stage = models.CharField(max_length=20, choices=Stage.choices, default=Stage.DRAFT)
    changelog = models.TextField(blank=True)
    config = models.JSONField()
    config_hash = models.CharField(max_length=64)
    # The production version this one replaced: where a rollback goes back to.
    previous_production = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stage_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "version"], name="unique_agent_version"),
            models.UniqueConstraint(
                fields=["agent"],
                condition=Q(stage="production"),
                name="one_production_version_per_agent",
            ),
            models.UniqueConstraint(
                fields=["agent"], condition=Q(stage="staging"), name="one_staging_version_per_agent"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent.name}@{self.version}"

    def audit_target(self) -> AuditTarget:
        return AuditTarget(
            "agent_version", self.pk, f"{self.agent.name}@{self.version}", self.agent_id
        )

    @property
    def is_editable(self) -> bool:
        return self.stage == self.Stage.DRAFT


class AgentUserObjectPermission(UserObjectPermissionBase):
    """Per-agent rights of a user (django-guardian, with a real foreign key)."""

    content_object = models.ForeignKey(Agent, on_delete=models.CASCADE)


class AgentGroupObjectPermission(GroupObjectPermissionBase):
    """Per-agent rights of a group: the agent's team."""

    content_object = models.ForeignKey(Agent, on_delete=models.CASCADE)
