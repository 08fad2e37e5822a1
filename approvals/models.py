from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from controlplane.models import AuditTarget


class ApprovalRequest(models.Model):
    """A person's yes or no that a run needs (seed 000's ``approval_queue``; DESIGN.md,
    "ApprovalRequest"), opened by the policy engine's require-approval outcome: before a run
    starts (``action`` = ``execute``) or at a tool call (``action`` = the tool action, with
    the call's idempotency key). ``requested_action`` is the exact payload that will run and
    ``action_hash`` its SHA-256: what runs after the approval must hash the same.

    ``status`` leaves ``pending`` once, by a conditional update (``approvals.services``), so
    a double click, two approvers at once or an approval racing the expiry sweep end in
    exactly one outcome::

        pending ──(M approvals)──► approved       pending ──(a rejection)──► rejected
        pending ──(expires_at passed)──► expired  pending ──(the run ended)──► cancelled
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        EXPIRED = "expired"
        CANCELLED = "cancelled"

    class Risk(models.TextChoices):
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"
        CRITICAL = "critical"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    execution = models.ForeignKey(
        "executions.Execution", on_delete=models.CASCADE, related_name="approvals"
    )
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="approvals")
    policy = models.ForeignKey(
        "policies.Policy", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    policy_name = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=100, help_text="execute, or the tool action.")
    # "execute", or the tool call's idempotency key: one request per run start or call.
    call_key = models.CharField(max_length=200)
    requested_action = models.JSONField(help_text="Exactly what will run once approved.")
    action_hash = models.CharField(max_length=64)
    reason = models.TextField(blank=True, help_text="Why the policy engine asked.")
    risk_level = models.CharField(max_length=20, choices=Risk.choices, default=Risk.MEDIUM)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    approvers = models.JSONField(default=list, blank=True, help_text="E-mails or group:NAME.")
    required_approvals = models.PositiveIntegerField(default=1)
    allow_self_approval = models.BooleanField(default=False)
    on_reject = models.CharField(max_length=20, default="tool_error")  # tool_error | cancel
    on_expire = models.CharField(max_length=20, default="reject")  # reject | approve
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_label = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField()
    warn_at = models.DateTimeField(null=True, blank=True)
    warned_at = models.DateTimeField(null=True, blank=True)
    # The outcome: who settled it (seed 000's approved_by), when, with which notes.
    decided_by = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    review_notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("decide_approvalrequest", "Can approve or reject requests")]
        constraints = [
            models.UniqueConstraint(
                fields=["execution", "call_key"], name="unique_approval_per_call"
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(status="pending"), name="approval_pending_expiry"
            ),
            models.Index(fields=["agent", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.action} for {self.execution_id} ({self.status})"

    def audit_target(self) -> AuditTarget:
        return AuditTarget(
            "approval", self.pk, f"{self.action} for {self.execution_id}", self.agent_id
        )

    @property
    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING

    @property
    def approval_count(self) -> int:
        """Approvals given so far, counted over ``decisions.all()`` (prefetched in lists)."""
        return sum(
            decision.verdict == ApprovalDecision.Verdict.APPROVE
            for decision in self.decisions.all()
        )

    @property
    def wait_seconds(self) -> float | None:
        if self.decided_at is None:
            return None
        return (self.decided_at - self.created_at).total_seconds()


class ApprovalDecision(models.Model):
    """One approver's approve or reject, with notes. An approver counts once per request."""

    class Verdict(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="decisions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user_label = models.CharField(max_length=200)
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    notes = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["request", "at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "user"],
                condition=Q(user__isnull=False),
                name="one_decision_per_approver",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_label}: {self.verdict}"
