from __future__ import annotations

from django.db import models

from controlplane.models import AuditTarget, Timestamped


class Schedule(Timestamped):
    """The cron schedule of an agent, kept by ``schedules.services.schedule_sync`` from the
    agent's production version (``trigger: {type: cron, schedule, timezone, …}``) and its
    status, in the transaction that changes them; never edited by hand. It owns the
    django-celery-beat ``PeriodicTask`` that rings at each fire.

    ``cursor`` is the last fire handled (or the moment the schedule took effect): a fire is
    due when it is after the cursor and its time (plus its jitter) has come. The row is
    locked while a fire is handled, so two beats, a tick delivered twice and the safety-net
    tick make one run per fire::

        active ──agent paused──► inactive (beat entry disabled) ──agent activated──► active
        active ──N failed runs in a row──► paused (by failures) ──resume──► active
        any ──agent deprecated / archived, or no longer cron──► inactive (beat entry removed)
    """

    class Overlap(models.TextChoices):
        SKIP = "skip", "skip the fire while a run of the agent is still going"
        QUEUE = "queue", "queue the fire until the run ends"
        ALLOW = "allow", "run alongside"

    class CatchUp(models.TextChoices):
        ONCE = "once", "run once for the missed fires"
        SKIP = "skip", "skip missed fires"

    agent = models.OneToOneField(
        "agents.Agent", on_delete=models.CASCADE, primary_key=True, related_name="schedule"
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    version = models.ForeignKey(
        "agents.AgentVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expression = models.CharField(max_length=100)
    timezone = models.CharField(max_length=64, default="UTC")
    input = models.JSONField(default=dict, blank=True)
    overlap = models.CharField(max_length=10, choices=Overlap.choices, default=Overlap.SKIP)
    catch_up = models.CharField(max_length=10, choices=CatchUp.choices, default=CatchUp.ONCE)
    jitter_seconds = models.PositiveIntegerField(default=0)
    pause_after_failures = models.PositiveIntegerField(default=0)  # 0: never
    active = models.BooleanField(default=False, db_index=True)
    cursor = models.DateTimeField()
    next_fire_at = models.DateTimeField(null=True, blank=True)
    # next_fire_at plus its jitter: when the safety-net tick calls a fire late.
    due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["due_at"]

    def __str__(self) -> str:
        return f"{self.expression} ({self.timezone})"

    def audit_target(self) -> AuditTarget:
        return AuditTarget(
            "schedule",
            self.agent_id,
            f"{self.agent.name}: {self.expression} ({self.timezone})",
            self.agent_id,
        )

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


class ScheduleFire(models.Model):
    """What became of one fire of a schedule: one row per (agent, scheduled instant), a
    database guarantee that a fire is handled once."""

    class Outcome(models.TextChoices):
        TRIGGERED = "triggered"  # an execution was created (its own status says the rest)
        QUEUED = "queued"  # overlap=queue: waits for the running run to end
        SKIPPED_OVERLAP = "skipped_overlap"
        SKIPPED_LATE = "skipped_late"  # catch_up=skip, and the fire could not run on time
        REFUSED = "refused"  # the trigger refused it (input schema, agent not runnable)

    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.CASCADE, related_name="schedule_fires"
    )
    fire_at = models.DateTimeField()
    handled_at = models.DateTimeField()
    outcome = models.CharField(max_length=20, choices=Outcome.choices, db_index=True)
    execution = models.ForeignKey(
        "executions.Execution",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="schedule_fires",
    )
    missed = models.PositiveIntegerField(
        default=0, help_text="Earlier fires that did not run on time and were folded into this."
    )
    late_seconds = models.FloatField(default=0)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-fire_at"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "fire_at"], name="one_record_per_fire")
        ]

    def __str__(self) -> str:
        return f"{self.agent_id} @ {self.fire_at:%Y-%m-%d %H:%M} UTC: {self.outcome}"
