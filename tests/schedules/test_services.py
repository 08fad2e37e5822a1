"""Cron schedules in the services: the beat entry follows the agent in the agent service's
transaction; each fire makes one run (or says why not) per the overlap and catch-up
settings; failures pause the schedule; time windows apply — all with an injected clock."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from agents import services as agent_services
from controlplane.access import Actor
from controlplane.errors import Conflict
from controlplane.models import AuditEvent
from executions.models import Execution
from executions.services import execution_transition
from schedules import notify
from schedules.fires import schedule_fire, schedules_tick
from schedules.models import Schedule, ScheduleFire
from schedules.services import schedule_pause, schedule_resume
from tests import factories
from tests.schedules.conftest import cron_agent, set_cursor, utc

pytestmark = pytest.mark.django_db

S = Execution.Status


@pytest.fixture
def owner() -> Any:
    return factories.user("olga", role="operator", email="olga@company.com")


def new_version(agent: Any, owner: Any, version: str, **trigger: Any) -> None:
    actor = Actor(user=owner)
    agent_services.agent_version_create(
        actor=actor,
        agent=agent,
        version=version,
        clone_from=agent.production_version.version,
        change={"trigger": trigger} if trigger else {},
    )
    factories.to_production(agent, owner, version)
    agent.refresh_from_db()


def beat_entry(agent: Any) -> PeriodicTask | None:
    schedule = Schedule.objects.filter(agent=agent).first()
    return schedule.periodic_task if schedule else None


def test_an_active_cron_agent_gets_a_timezone_aware_beat_entry(owner: Any) -> None:
    agent = cron_agent(owner, "0 9 * * 1-5", zone="Europe/Paris")
    task = beat_entry(agent)
    assert task is not None and task.enabled
    assert task.task == "schedules.tasks.cron_fire"
    assert json.loads(task.args) == [str(agent.pk)]
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week) == ("0", "9", "1,2,3,4,5")
    assert str(crontab.timezone) == "Europe/Paris"
    assert task.description == "At 09:00, Monday through Friday, Europe/Paris"
    schedule = Schedule.objects.get(agent=agent)
    assert schedule.active and schedule.next_fire_at > timezone.now()
    assert AuditEvent.objects.filter(action="schedule.created", agent_id=agent.pk).exists()


def test_the_beat_entry_follows_pause_activate_promote_rollback_and_deprecate(owner: Any) -> None:
    agent = cron_agent(owner, "0 9 * * *")
    actor = Actor(user=owner)
    task_id = beat_entry(agent).pk

    agent_services.agent_transition(actor=actor, agent=agent, action="pause")
    assert PeriodicTask.objects.get(pk=task_id).enabled is False
    assert Schedule.objects.get(agent=agent).active is False

    agent_services.agent_transition(actor=actor, agent=agent, action="activate")
    assert PeriodicTask.objects.get(pk=task_id).enabled is True

    new_version(agent, owner, "1.1.0", schedule="30 18 * * *", timezone="Asia/Tokyo")
    task = PeriodicTask.objects.get(pk=task_id)  # the same entry, updated
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == (
        "30",
        "18",
        "Asia/Tokyo",
    )
    assert AuditEvent.objects.filter(action="schedule.changed", agent_id=agent.pk).exists()

    agent_services.agent_rollback(actor=actor, agent=agent)
    task = PeriodicTask.objects.get(pk=task_id)
    assert (task.crontab.hour, str(task.crontab.timezone)) == ("9", "UTC")

    agent_services.agent_transition(actor=actor, agent=agent, action="deprecate")
    assert not PeriodicTask.objects.filter(pk=task_id).exists()
    schedule = Schedule.objects.get(agent=agent)
    assert (schedule.active, schedule.next_fire_at) == (False, None)
    assert AuditEvent.objects.filter(action="schedule.removed", agent_id=agent.pk).exists()


def test_archive_removes_the_entry_and_a_non_cron_version_does_too(owner: Any) -> None:
    agent = cron_agent(owner, name="one")
    agent_services.agent_transition(actor=Actor(user=owner), agent=agent, action="archive")
    assert beat_entry(agent) is None

    other = cron_agent(owner, name="two")
    new_version(other, owner, "2.0.0", type="manual", schedule=None)
    assert beat_entry(other) is None
    assert Schedule.objects.get(agent=other).active is False


def test_the_entry_is_written_in_the_agent_services_transaction(owner: Any) -> None:
    agent = cron_agent(owner)
    task_id = beat_entry(agent).pk
    with pytest.raises(RuntimeError), transaction.atomic():
        agent_services.agent_transition(actor=Actor(user=owner), agent=agent, action="deprecate")
        assert not PeriodicTask.objects.filter(pk=task_id).exists()
        raise RuntimeError("the request failed after the service")
    assert PeriodicTask.objects.get(pk=task_id).enabled is True
    assert Schedule.objects.get(agent=agent).active is True


def test_a_fire_makes_one_cron_run_and_a_second_delivery_makes_none(owner: Any) -> None:
    agent = cron_agent(owner, "0 9 * * *")
    set_cursor(agent, utc(2026, 5, 1, 8, 0))
    first = schedule_fire(agent.pk, now=utc(2026, 5, 1, 9, 0, 0, 300_000))
    assert first.outcome == "triggered" and first.missed == 0
    execution = Execution.objects.get(pk=first.execution_id)
    assert execution.trigger_source == "cron"
    assert execution.idempotency_key == "cron:2026-05-01T09:00:00Z"
    again = schedule_fire(agent.pk, now=utc(2026, 5, 1, 9, 0, 2))
    assert again.handled is None
    assert Execution.objects.filter(agent=agent).count() == 1
    fire = ScheduleFire.objects.get(agent=agent)
    assert (fire.fire_at, fire.execution_id) == (utc(2026, 5, 1, 9), execution.pk)
    schedule = Schedule.objects.get(agent=agent)
    assert schedule.cursor == utc(2026, 5, 1, 9)
    assert schedule.next_fire_at == utc(2026, 5, 2, 9)


def test_beat_ringing_a_moment_early_still_fires(owner: Any) -> None:
    agent = cron_agent(owner, "0 9 * * *")
    set_cursor(agent, utc(2026, 5, 1, 8, 0))
    report = schedule_fire(agent.pk, now=utc(2026, 5, 1, 8, 59, 59, 500_000))
    assert report.handled == utc(2026, 5, 1, 9)


def test_editing_the_schedule_just_as_it_rings_keeps_that_fire(owner: Any) -> None:
    agent = cron_agent(owner, "0 9 * * *")
    schedule = Schedule.objects.get(agent=agent)
    # Beat rang at 09:00 for the old schedule; the new version lands before a worker takes
    # the message. The fire at 09:00 is in the new calendar too: it must still run.
    set_cursor(agent, timezone.now() - timedelta(days=1))
    now = timezone.now()
    expression = f"{now.minute} {now.hour} * * *"
    new_version(agent, owner, "1.1.0", schedule=f"{expression}")
    schedule.refresh_from_db()
    report = schedule_fire(agent.pk, now=now + timedelta(seconds=1))
    assert report.outcome == "triggered"
    assert report.handled == now.replace(second=0, microsecond=0)


def test_overlap_skip_skips_while_a_run_is_going(owner: Any) -> None:
    agent = cron_agent(owner, "*/5 * * * *")
    set_cursor(agent, utc(2026, 5, 1, 9, 0))
    first = schedule_fire(agent.pk, now=utc(2026, 5, 1, 9, 5))
    assert first.outcome == "triggered"  # queued, nobody runs it here: still going
    second = schedule_fire(agent.pk, now=utc(2026, 5, 1, 9, 10))
    assert second.outcome == "skipped_overlap"
    fire = ScheduleFire.objects.get(agent=agent, fire_at=utc(2026, 5, 1, 9, 10))
    assert str(first.execution_id) in fire.detail
    assert Execution.objects.filter(agent=agent).count() == 1


def test_overlap_queue_starts_the_fire_when_the_run_ends(owner: Any) -> None:
    agent = cron_agent(owner, "*/5 * * * *", overlap="queue")
    set_cursor(agent, utc(2026, 5, 1, 9, 0))
    first = schedule_fire(agent.pk, now=utc(2026, 5, 1, 9, 5))
    second = schedule_fire(agent.pk, now=utc(2026, 5, 1, 9, 10))
    assert second.outcome == "queued"
    assert Execution.objects.filter(agent=agent).count() == 1
    # Still going: the tick leaves it queued.
    schedules_tick(now=utc(2026, 5, 1, 9, 11))
    assert Execution.objects.filter(agent=agent).count() == 1
    execution_transition(execution_id=first.execution_id, to=S.RUNNING)
    execution_transition(execution_id=first.execution_id, to=S.SUCCESS)
    assert schedules_tick(now=utc(2026, 5, 1, 9, 12)).drained == 1
    fire = ScheduleFire.objects.get(agent=agent, fire_at=utc(2026, 5, 1, 9, 10))
    assert fire.outcome == "triggered"
    assert fire.execution.idempotency_key == "cron:2026-05-01T09:10:00Z"


def test_overlap_allow_runs_alongside(owner: Any) -> None:
    agent = cron_agent(owner, "*/5 * * * *", overlap="allow")
    set_cursor(agent, utc(2026, 5, 1, 9, 0))
    schedule_fire(agent.pk, now=utc(2026, 5, 1, 9, 5))
    assert schedule_fire(agent.pk, now=utc(2026, 5, 1, 9, 10)).outcome == "triggered"
    assert Execution.objects.filter(agent=agent, status=S.QUEUED).count() == 2


def test_after_downtime_catch_up_once_runs_one_run_and_raises_the_alert(
    owner: Any, django_capture_on_commit_callbacks: Any
) -> None:
    agent = cron_agent(owner, "0 * * * *")
    set_cursor(agent, utc(2026, 5, 1, 6, 0))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report = schedule_fire(agent.pk, now=utc(2026, 5, 1, 10, 20))
    assert (report.outcome, report.handled, report.missed) == ("triggered", utc(2026, 5, 1, 10), 3)
    assert report.late_seconds == 20 * 60
    assert Execution.objects.filter(agent=agent).count() == 1
    event = AuditEvent.objects.get(action="schedule.missed", agent_id=agent.pk)
    assert event.after["missed"] == 3 and event.after["outcome"] == "triggered"
    assert len(callbacks) >= 1  # the notification goes out after commit


def test_after_downtime_catch_up_skip_runs_nothing_but_says_so(owner: Any) -> None:
    agent = cron_agent(owner, "0 * * * *", catch_up="skip")
    set_cursor(agent, utc(2026, 5, 1, 6, 0))
    report = schedule_fire(agent.pk, now=utc(2026, 5, 1, 10, 20))
    assert report.outcome == "skipped_late"
    assert not Execution.objects.filter(agent=agent).exists()
    assert AuditEvent.objects.filter(action="schedule.missed", agent_id=agent.pk).exists()
    # The next fire, on time, runs.
    assert schedule_fire(agent.pk, now=utc(2026, 5, 1, 11, 0, 5)).outcome == "triggered"


def test_a_single_fire_handled_within_the_grace_is_not_an_alert(owner: Any) -> None:
    agent = cron_agent(owner, "0 * * * *")
    set_cursor(agent, utc(2026, 5, 1, 9, 0))
    schedule_fire(agent.pk, now=utc(2026, 5, 1, 10, 0, 30))
    assert not AuditEvent.objects.filter(action="schedule.missed").exists()


def test_jitter_delays_the_fire_and_every_process_agrees_on_it(owner: Any) -> None:
    agent = cron_agent(owner, "0 9 * * *", jitter_seconds=600)
    schedule = set_cursor(agent, utc(2026, 5, 1, 8, 0))
    delay = (schedule.due_at - schedule.next_fire_at).total_seconds()
    assert 0 <= delay <= 600
    if delay > 1:
        early = schedule_fire(agent.pk, now=utc(2026, 5, 1, 9))
        assert early.handled is None and early.retry_in == pytest.approx(delay)
        assert schedules_tick(now=utc(2026, 5, 1, 9)).fired == 0
    assert schedules_tick(now=schedule.due_at).fired == 1
    assert Execution.objects.filter(agent=agent).count() == 1


def test_the_safety_net_tick_fires_what_beat_did_not(owner: Any) -> None:
    agent = cron_agent(owner, "*/10 * * * *")
    set_cursor(agent, utc(2026, 5, 1, 9, 0))
    assert schedules_tick(now=utc(2026, 5, 1, 9, 9)).fired == 0
    assert schedules_tick(now=utc(2026, 5, 1, 9, 10, 14)).fired == 1
    assert schedules_tick(now=utc(2026, 5, 1, 9, 10, 29)).fired == 0
    assert Execution.objects.filter(agent=agent).count() == 1


def test_a_paris_schedule_fires_at_the_shifted_time_on_the_spring_change(owner: Any) -> None:
    agent = cron_agent(owner, "30 2 * * *", zone="Europe/Paris")
    schedule = set_cursor(agent, utc(2026, 3, 28, 12))
    assert schedule.next_fire_at == utc(2026, 3, 29, 1, 30)  # 03:30 CEST
    assert schedule_fire(agent.pk, now=utc(2026, 3, 29, 0, 30)).handled is None  # 02:30 CET
    assert schedule_fire(agent.pk, now=utc(2026, 3, 29, 1, 30)).outcome == "triggered"


def test_failed_runs_in_a_row_pause_the_schedule_and_tell_the_owner(
    owner: Any, django_capture_on_commit_callbacks: Any
) -> None:
    agent = cron_agent(owner, "*/5 * * * *", pause_after_failures=2, overlap="allow")
    set_cursor(agent, utc(2026, 5, 1, 9, 0))

    def fail_next(minute: int) -> None:
        report = schedule_fire(agent.pk, now=utc(2026, 5, 1, 9, minute))
        execution_transition(execution_id=report.execution_id, to=S.RUNNING)
        execution_transition(
            execution_id=report.execution_id, to=S.FAILED, fields={"error_message": "boom"}
        )

    fail_next(5)
    report = schedule_fire(agent.pk, now=utc(2026, 5, 1, 9, 10))
    execution_transition(execution_id=report.execution_id, to=S.RUNNING)
    execution_transition(execution_id=report.execution_id, to=S.SUCCESS)  # the count resets
    fail_next(15)
    assert Schedule.objects.get(agent=agent).consecutive_failures == 1
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        fail_next(20)
    schedule = Schedule.objects.select_related("periodic_task").get(agent=agent)
    assert schedule.paused and not schedule.active
    assert schedule.periodic_task.enabled is False
    assert "2 failed runs in a row; last: boom" in schedule.paused_reason
    assert AuditEvent.objects.filter(action="schedule.paused", agent_id=agent.pk).exists()
    assert callbacks
    # Paused: nothing fires, not even from the tick.
    assert schedule_fire(agent.pk, now=utc(2026, 5, 1, 9, 25)).handled is None
    # The agent itself is still active.
    agent.refresh_from_db()
    assert agent.status == "active"

    resumed = schedule_resume(actor=Actor(user=owner), agent=agent, now=utc(2026, 5, 1, 9, 33))
    assert resumed.active and resumed.periodic_task.enabled and resumed.consecutive_failures == 0
    assert resumed.next_fire_at == utc(2026, 5, 1, 9, 35)  # the paused fires are not owed


def test_pause_and_resume_by_hand_and_their_conflicts(owner: Any) -> None:
    agent = cron_agent(owner)
    actor = Actor(user=owner)
    with pytest.raises(Conflict, match="not paused"):
        schedule_resume(actor=actor, agent=agent)
    paused = schedule_pause(actor=actor, agent=agent)
    assert paused.paused_reason == "paused by olga"
    with pytest.raises(Conflict, match="already paused"):
        schedule_pause(actor=actor, agent=agent)
    plain = factories.runnable_agent(owner, name="plain")
    with pytest.raises(Conflict, match="no cron schedule"):
        schedule_pause(actor=actor, agent=plain)


@pytest.mark.parametrize(
    ("action", "status"), [("delay_until_allowed", "scheduled"), ("reject", "blocked")]
)
def test_a_time_window_delays_or_skips_a_cron_run(owner: Any, action: str, status: str) -> None:
    agent = cron_agent(owner, "* * * * *", name="nightly")
    now = timezone.now()
    factories.policy(
        owner,
        "not-this-hour",
        "time_window",
        {
            "allowed_hours": [hour for hour in range(24) if hour != now.hour],
            "allowed_days": ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"],
            "timezone": "UTC",
            "action_on_violation": action,
        },
        agent=agent,
    )
    minute = now.replace(second=0, microsecond=0)
    set_cursor(agent, minute - timedelta(seconds=1))
    report = schedule_fire(agent.pk, now=minute + timedelta(seconds=1))
    assert report.outcome == "triggered"
    execution = Execution.objects.get(pk=report.execution_id)
    assert (execution.status, execution.trigger_source) == (status, "cron")
    if status == "scheduled":
        assert execution.not_before == (now + timedelta(hours=1)).replace(
            minute=0, second=0, microsecond=0
        )


def test_the_notification_mails_the_owner_and_is_audited(owner: Any) -> None:
    agent = cron_agent(owner)
    admin = factories.user("ada", role="admin", email="ada@company.com")
    assert admin
    notify.send(str(agent.pk), "paused", "5 failed runs in a row")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Schedule of cron-agent paused after failed runs"
    assert sorted(mail.outbox[0].to) == ["ada@company.com", "olga@company.com"]
    assert "/agents/cron-agent/" in mail.outbox[0].body
    assert AuditEvent.objects.filter(action="schedule.notified", agent_id=agent.pk).exists()


def test_an_input_that_the_schema_refuses_is_refused_when_the_version_is_made(
    owner: Any,
) -> None:
    from rest_framework.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        cron_agent(
            owner,
            config={"input_schema": {"type": "object", "required": ["region"]}},
            input={"other": 1},
        )
    assert "trigger.input" in caught.value.detail


def test_the_tick_adopts_a_cron_agent_that_has_no_schedule(owner: Any) -> None:
    agent = cron_agent(owner, "0 9 * * *")
    # As if the agent predated schedules: no schedule row, no beat entry.
    PeriodicTask.objects.filter(name__startswith="cron:").delete()
    Schedule.objects.filter(agent=agent).delete()
    assert schedules_tick().adopted == 1
    schedule = Schedule.objects.select_related("periodic_task").get(agent=agent)
    assert schedule.active and schedule.periodic_task.enabled
    assert schedules_tick().adopted == 0
