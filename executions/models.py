from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from controlplane.models import AuditTarget


class Execution(models.Model):
    """One run of one pinned agent version (seed 000's ``executions`` table, plus what it
    takes to never lose a run). ``status`` is written only by
    ``executions.services.execution_transition``::

                    ┌── blocked / rate_limited (refused at trigger, with the reason)
        trigger ──► ├── scheduled (not_before) ─────────────────────────┐
                    ├── pending_approval ──approve──► queued             │
                    └── queued ◄─────────────────────────────────────────┘
        queued ──► running ──► success | failed | timed_out | cancelled
        running ──(worker lost: heartbeat stale)──► queued (next attempt) | failed
        running ──(tool call needs approval)──► pending_approval ──approve──► running
        pending_approval ──reject──► cancelled;  ──expire──► expired
    """

    class Status(models.TextChoices):
        SCHEDULED = "scheduled"
        PENDING_APPROVAL = "pending_approval"
        QUEUED = "queued"
        RUNNING = "running"
        SUCCESS = "success"
        FAILED = "failed"
        TIMED_OUT = "timed_out"
        CANCELLED = "cancelled"
        BLOCKED = "blocked"
        RATE_LIMITED = "rate_limited"
        EXPIRED = "expired"

    TERMINAL = frozenset(
        {
            Status.SUCCESS,
            Status.FAILED,
            Status.TIMED_OUT,
            Status.CANCELLED,
            Status.BLOCKED,
            Status.RATE_LIMITED,
            Status.EXPIRED,
        }
    )

    class Source(models.TextChoices):
        API = "api"
        MANUAL = "manual"  # the console's Run form, the admin action, the command
        WEBHOOK = "webhook"
        CRON = "cron"
        EVENT = "event"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey("agents.Agent", on_delete=models.PROTECT, related_name="executions")
    agent_version = models.ForeignKey(
        "agents.AgentVersion", on_delete=models.PROTECT, related_name="executions"
    )
    is_staging = models.BooleanField(default=False, help_text="Ran the staging version.")
    trigger_source = models.CharField(max_length=20, choices=Source.choices)
    trigger_user = models.CharField(max_length=200, blank=True)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=20, choices=Status.choices, db_index=True)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    output_summary = models.TextField(blank=True)
    error_type = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)
    # NULL, not "": the uniqueness of (agent, key) applies only to runs that have a key.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    request_fingerprint = models.CharField(max_length=64, blank=True)
    policy_trace = models.JSONField(default=list, blank=True)
    # What the trigger-time decision reserved (a concurrency slot, a budget estimate): given
    # back when the run ends.
    policy_reservations = models.JSONField(default=list, blank=True)
    # The model a routing policy chose for this run: {provider, model, max_tokens}.
    routing = models.JSONField(null=True, blank=True)

    # LLM usage and cost, totals over the run (per call: ExecutionStep).
    llm_provider = models.CharField(max_length=50, blank=True)
    llm_model = models.CharField(max_length=100, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    # NULL while any call's model has no known price: unknown is never 0.
    estimated_cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    total_latency_ms = models.PositiveIntegerField(null=True, blank=True)

    # Running it: attempts, liveness, cancellation, resumption.
    attempt = models.PositiveIntegerField(default=1)
    not_before = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    cancel_requested = models.BooleanField(default=False)
    awaiting_report = models.BooleanField(
        default=False, help_text="An external runtime (n8n) has the run and will report."
    )
    callback_token_hash = models.CharField(max_length=64, blank=True)
    checkpoint = models.JSONField(null=True, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    trace_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("cancel_execution", "Can cancel a run")]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="unique_execution_idempotency_key",
            )
        ]
        indexes = [
            models.Index(fields=["agent", "-created_at"]),
            # The console's list, newest first, without sorting every row.
            models.Index(fields=["-created_at", "-id"], name="execution_newest_first"),
            models.Index(fields=["status", "heartbeat_at"]),
            models.Index(fields=["-estimated_cost_usd"]),
            models.Index(
                fields=["not_before"],
                condition=Q(status="scheduled"),
                name="execution_scheduled_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent_id}:{self.pk} {self.status}"

    def audit_target(self, repr: str = "") -> AuditTarget:
        """The run as an event's target; it reads as its agent's id unless told otherwise
        (the agent's name, where it is at hand)."""
        return AuditTarget("execution", self.pk, repr or str(self.agent_id), self.agent_id)

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL


class ExecutionStep(models.Model):
    """One step of a run's timeline: an LLM call, a tool call, a check."""

    class Kind(models.TextChoices):
        POLICY = "policy"
        LLM_CALL = "llm_call"
        TOOL_CALL = "tool_call"
        APPROVAL = "approval"
        EVAL = "eval"
        EXTERNAL = "external"  # reported by an external runtime (n8n)

    class Status(models.TextChoices):
        SUCCESS = "success"
        FAILED = "failed"
        REFUSED = "refused"
        PENDING = "pending"  # waiting for an approval

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices)
    attempt = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField()
    latency_ms = models.PositiveIntegerField(default=0)
    provider = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=100, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["execution", "index"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "index"], name="unique_step_index")
        ]

    def __str__(self) -> str:
        return f"{self.index}. {self.name} ({self.status})"


class ExecutionAction(models.Model):
    """A tool action, recorded before it is sent and after it returns, under an idempotency
    key that stays the same across retries, resumptions and re-runs of the same call: an
    action that completed is never performed again."""

    class Status(models.TextChoices):
        STARTED = "started"  # sent, outcome not yet recorded (a crash leaves it here)
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        REFUSED = "refused"

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="actions")
    idempotency_key = models.CharField(max_length=200, unique=True)
    action = models.CharField(max_length=100)
    target = models.CharField(max_length=500, blank=True)
    method = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    arguments = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    approved = models.BooleanField(default=True)
    auto_approved = models.BooleanField(default=True)
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["execution", "started_at"]

    def __str__(self) -> str:
        return f"{self.action} → {self.target} ({self.status})"


class ExecutionLog(models.Model):
    """A log line of a run (``GET /executions/{id}/logs``)."""

    class Level(models.TextChoices):
        DEBUG = "debug"
        INFO = "info"
        WARN = "warn"
        ERROR = "error"

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="logs")
    at = models.DateTimeField(db_index=True)
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    message = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["execution", "at", "id"]

    def __str__(self) -> str:
        return f"[{self.level}] {self.message[:80]}"


class DayRollup(models.Model):
    """The runs created on one closed UTC day by one agent with one LLM provider, summed
    (``executions.rollups``): what the dashboard's 30-day panels read instead of the runs."""

    day = models.DateField()
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="+")
    llm_provider = models.CharField(max_length=50, blank=True)
    runs = models.PositiveIntegerField()
    finished = models.PositiveIntegerField()  # succeeded, failed or timed out
    succeeded = models.PositiveIntegerField()
    latency_sum = models.BigIntegerField()  # over the runs that recorded a latency
    latency_count = models.PositiveIntegerField()
    cost = models.DecimalField(max_digits=20, decimal_places=6)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "agent", "llm_provider"], name="unique_day_rollup"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.agent_id} {self.llm_provider or '-'}: {self.runs} runs"


class RolledUpDay(models.Model):
    """A UTC day whose ``DayRollup`` rows are complete (a day without runs has none)."""

    day = models.DateField(primary_key=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "summed day"

    def __str__(self) -> str:
        return str(self.day)
