"""A real beat and a real worker fire a cron agent end to end. Two beat processes run, as
when someone starts a second one by mistake, and the fire's task is delivered again on top
(a redelivered message): one run per fire."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from controlplane.celery import app as celery_app
from executions.models import Execution
from schedules.models import ScheduleFire
from tests import factories
from tests.processes import celery_beat, celery_worker
from tests.schedules.conftest import cron_agent

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Beat's own entry rings the fire: the safety-net tick is kept out of the way.
ENV = {"SCHEDULES_INTERVAL_SECONDS": "3600"}
SENT = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ .*Sending due task cron:minutely:")


def rang_at(log: Path) -> list[datetime]:
    """When this beat sent the agent's fire task (its log's times are UTC here)."""
    return [
        datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        for found in map(SENT.match, log.read_text().splitlines())
        if found
    ]


def key(fire: datetime) -> str:
    return f"cron:{fire:%Y-%m-%dT%H:%M:%SZ}"


def test_two_beats_and_a_worker_fire_an_every_minute_schedule_once() -> None:
    owner = factories.user("olga", role="operator")
    agent = cron_agent(owner, "* * * * *", name="minutely")
    with celery_worker(env=ENV), celery_beat(env=ENV) as log_one, celery_beat(env=ENV) as log_two:
        # The first minute both beats are surely up for (a beat may also ring, at its start,
        # a fire of the minute before: that one is handled too, once).
        target = (timezone.now() + timedelta(seconds=63)).replace(second=0, microsecond=0)
        deadline = time.monotonic() + 150
        while not Execution.objects.filter(
            agent=agent, idempotency_key=key(target), status="success"
        ).exists():
            assert time.monotonic() < deadline, f"the fire of {target} did not run"
            time.sleep(0.2)
        # The same fire delivered three more times (a beat's late send, a redelivery).
        for _ in range(3):
            celery_app.send_task("schedules.tasks.cron_fire", args=[str(agent.pk)], queue="default")
        time.sleep(3)  # they, and the other beat's send if it rang, have arrived by now
        rings = rang_at(log_one) + rang_at(log_two)

    # A beat rang the target minute's fire (the tick was off); whoever else delivered it
    # (both beats often do, at the same moment), it made one run.
    assert any(target - timedelta(seconds=1) <= at < target + timedelta(seconds=30)
               for at in rings), rings  # fmt: skip
    [run] = Execution.objects.filter(agent=agent, idempotency_key=key(target))
    assert run.trigger_source == "cron" and run.output_summary
    fire = ScheduleFire.objects.get(agent=agent, fire_at=target)
    assert (fire.execution_id, fire.outcome) == (run.pk, "triggered")
    # And no fire, whichever beat rang it, made more than one run.
    keys = list(Execution.objects.filter(agent=agent).values_list("idempotency_key", flat=True))
    assert len(keys) == len(set(keys)) == ScheduleFire.objects.filter(agent=agent).count()
