"""Fires racing, with real concurrency against PostgreSQL (threads, each with its own
connection, released together): beats ringing at once, the tick racing them, an edit of
the schedule racing its fire — one run per fire every time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection  # noqa: F401 - read by the skipif condition
from django.utils import timezone

from agents import services as agent_services
from controlplane.access import Actor
from executions.models import Execution
from schedules.fires import schedule_fire, schedules_tick
from schedules.models import ScheduleFire
from tests import factories
from tests.policies.test_concurrency import at_once
from tests.schedules.conftest import cron_agent, set_cursor, utc

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'",
        reason="row locks and concurrent writers: PostgreSQL",
    ),
]


def test_eight_deliveries_of_one_fire_at_once_make_one_run() -> None:
    owner = factories.user("olga", role="operator")
    agent = cron_agent(owner, "*/5 * * * *", overlap="allow")
    set_cursor(agent, utc(2026, 5, 1, 9, 0))
    now = utc(2026, 5, 1, 9, 5, 0, 200_000)
    outcomes = at_once(8, lambda n: schedule_fire(agent.pk, now=now).outcome)
    assert sorted(outcomes) == [""] * 7 + ["triggered"]
    assert Execution.objects.filter(agent=agent).count() == 1
    assert ScheduleFire.objects.filter(agent=agent).count() == 1


def test_beats_and_the_tick_racing_over_many_fires_make_one_run_each() -> None:
    owner = factories.user("olga", role="operator")
    agent = cron_agent(owner, "* * * * *", overlap="allow")
    set_cursor(agent, utc(2026, 5, 1, 9, 0))
    for minute in range(1, 11):
        now = utc(2026, 5, 1, 9, minute, 0, 100_000)
        at_once(
            4,
            lambda n, now=now: schedules_tick(now) if n == 3 else schedule_fire(agent.pk, now=now),
        )
    keys = list(Execution.objects.filter(agent=agent).values_list("idempotency_key", flat=True))
    assert sorted(keys) == [f"cron:2026-05-01T09:{minute:02d}:00Z" for minute in range(1, 11)]


def test_an_edit_racing_the_fire_loses_neither() -> None:
    owner = factories.user("olga", role="operator")
    agent = cron_agent(owner, "* * * * *", overlap="allow")
    now = timezone.now()
    set_cursor(agent, now - timedelta(seconds=61))
    actor = Actor(user=owner)
    agent_services.agent_version_create(
        actor=actor,
        agent=agent,
        version="1.1.0",
        clone_from="1.0.0",
        change={"trigger": {"schedule": "*/1 * * * *"}},
    )
    agent_services.agent_version_promote(actor=actor, agent=agent, version="1.1.0")

    def work(n: int) -> Any:
        if n == 0:
            return agent_services.agent_version_promote(actor=actor, agent=agent, version="1.1.0")
        return schedule_fire(agent.pk, now=now)

    at_once(2, work)
    fire = now.replace(second=0, microsecond=0)
    assert Execution.objects.filter(
        agent=agent, idempotency_key=f"cron:{fire:%Y-%m-%dT%H:%M:%SZ}"
    ).exists()
