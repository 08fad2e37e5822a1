from __future__ import annotations

import uuid

from django.db import models

from controlplane.models import AuditTarget, Authored


class Policy(Authored):
    """A rule the policy engine applies (seed 000's ``policies`` table; DESIGN.md, "Policy").

    Lower ``priority`` is looked at first; disabled policies are ignored.
    """

    class Type(models.TextChoices):
        RATE_LIMIT = "rate_limit"
        APPROVAL_REQUIRED = "approval_required"
        TIME_WINDOW = "time_window"
        DESTINATION = "destination"
        COST_BUDGET = "cost_budget"
        CONCURRENCY = "concurrency"
        MODEL_ROUTING = "model_routing"
        CONTENT_SAFETY = "content_safety"

    class Scope(models.TextChoices):
        ALL = "all"
        AGENT = "agent"
        TAG = "tag"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    policy_name = models.CharField(max_length=255, unique=True)
    policy_type = models.CharField(max_length=50, choices=Type.choices)
    applies_to = models.CharField(max_length=20, choices=Scope.choices, default=Scope.ALL)
    target_agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.CASCADE, related_name="policies"
    )
    target_tags = models.ManyToManyField("agents.Tag", blank=True, related_name="policies")
    rules = models.JSONField(default=dict)
    enabled = models.BooleanField(default=True, db_index=True)
    priority = models.IntegerField(default=100, db_index=True)

    class Meta:
        ordering = ["priority", "policy_name"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.policy_name

    def audit_target(self) -> AuditTarget:
        return AuditTarget("policy", self.pk, self.policy_name, self.target_agent_id)
