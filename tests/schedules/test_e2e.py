"""A real beat and a real worker fire a cron agent end to end. Two beat processes run, as
when someone starts a second one by mistake: both ring the fire, one run happens."""

from __future__ import annotations

import time
from typing import Any

import pytest

from executions.models import Execution
from schedules.models import Schedule, ScheduleFire
from tests import factories
from tests.processes import celery_beat, celery_worker
from tests.schedules.conftest import cron_agent

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Beat's own entry rings the fire: the safety-net tick is kept out of the way.
ENV = {"SCHEDULES_INTERVAL_SECONDS": "3600"}


def test_two_beats_and_a_worker_fire_an_every_minute_schedule_once() -> None:
    owner = factories.user("olga", role="operator")
    agent = cron_agent(owner, "* * * * *", name="minutely")
    schedule = Schedule.objects.get(agent=agent)
    fire_at = schedule.next_fire_at
    with celery_worker(env=ENV), celery_beat(env=ENV) as log_one, celery_beat(env=ENV) as log_two:
        deadline = time.monotonic() + 100
        while not Execution.objects.filter(agent=agent, status="success").exists():
            assert time.monotonic() < deadline, "no cron run finished within 100 s"
            time.sleep(0.2)
        time.sleep(3)  # the second beat's delivery has long arrived by now
        logs = [log_one.read_text(), log_two.read_text()]

    runs = list(Execution.objects.filter(agent=agent))
    assert len(runs) == 1
    run: Any = runs[0]
    assert run.trigger_source == "cron"
    assert run.output_summary or run.output  # the simulated model answered
    fire = ScheduleFire.objects.get(agent=agent)
    assert (fire.fire_at, fire.execution_id, fire.outcome) == (fire_at, run.pk, "triggered")
    assert run.idempotency_key == f"cron:{fire_at:%Y-%m-%dT%H:%M:%SZ}"
    # Each beat rang it.
    rang = [log.count(f"Sending due task cron:minutely:{agent.pk}") for log in logs]
    assert rang[0] >= 1 and rang[1] >= 1, logs
