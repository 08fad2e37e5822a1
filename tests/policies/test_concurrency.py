"""Counters hold exactly under real concurrency: many threads (each with its own database
and Redis connections) and several processes trigger at once against one limit."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from controlplane.access import Actor
from executions import maintenance
from executions.models import Execution
from executions.trigger import TriggerRequest, execution_trigger
from policies import counters, engine
from policies.models import Policy
from policies.types import cost_budget
from tests import factories
from tests.processes import ROOT, child_env

pytestmark = pytest.mark.django_db(transaction=True)

TRIGGER = "/api/v1/executions/trigger"
S = Execution.Status


def at_once(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(n)`` in ``count`` threads released together; their results, in any order."""
    barrier = threading.Barrier(count)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        try:
            barrier.wait()
            result = work(n)
            with lock:
                results.append(result)
        except BaseException as exc:  # reported below, not lost in the thread
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors[:3]
    assert len(results) == count
    return results


def test_two_hundred_simultaneous_triggers_against_a_limit_of_fifty_admit_exactly_fifty() -> None:
    owner = factories.user("alice", role="operator")
    admin = factories.user("root", role="admin")
    runner = factories.runnable_agent(owner)
    policy = factories.policy(
        admin, "fifty", "rate_limit", {"max_executions": 50, "window_minutes": 60}, agent=runner
    )
    key = factories.api_key(owner)

    def fire(_: int) -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        return client.post(TRIGGER, {"agent": runner.name, "input": {}}, format="json").status_code

    answers = Counter(at_once(200, fire))

    assert answers == {202: 50, 429: 150}
    statuses = Counter(Execution.objects.values_list("status", flat=True))
    assert statuses == {S.QUEUED: 50, S.RATE_LIMITED: 150}
    window = f"{counters.PREFIX}:{policy.pk}:rate:{runner.pk}"
    assert counters.client().zcard(window) == 50


def test_simultaneous_triggers_never_exceed_the_running_limit() -> None:
    owner = factories.user("alice", role="operator")
    admin = factories.user("root", role="admin")
    runner = factories.runnable_agent(owner)
    policy = factories.policy(admin, "ten", "concurrency", {"max_running": 10}, agent=runner)

    def fire(_: int) -> str:
        return execution_trigger(
            TriggerRequest(actor=Actor(user=owner), agent=runner, input={}, source="api")
        ).execution.status

    statuses = Counter(at_once(100, fire))

    assert statuses == {S.QUEUED: 10, S.SCHEDULED: 90}
    running = f"{counters.PREFIX}:{policy.pk}:running:{runner.pk}"
    members = {m.decode() for m in counters.client().zrange(running, 0, -1)}
    assert members == {
        str(pk) for pk in Execution.objects.filter(status=S.QUEUED).values_list("pk", flat=True)
    }


def test_a_budget_is_never_overspent_by_simultaneous_runs() -> None:
    owner = factories.user("alice", role="operator")
    admin = factories.user("root", role="admin")
    priced = factories.runnable_agent(
        owner, name="priced", llm={"model": "claude-haiku-4-5", "max_tokens": 1000}
    )
    estimate = cost_budget._run_estimate(priced.production_version, {})
    limit = estimate * 10 + estimate / 2  # room for ten and a half runs
    factories.policy(admin, "budget", "cost_budget", {"max_cost_usd": float(limit)})

    def fire(_: int) -> Execution:
        return execution_trigger(
            TriggerRequest(actor=Actor(user=owner), agent=priced, input={}, source="api")
        ).execution

    executions = at_once(100, fire)

    admitted = [e for e in executions if e.status == S.QUEUED]
    assert len(admitted) == 10
    assert Counter(e.status for e in executions)[S.BLOCKED] == 90
    key = admitted[0].policy_reservations[0]["key"]
    reserved, spent = counters.budget_state(key)
    assert reserved == 10 * int(estimate * cost_budget.MICRO) and spent == 0
    assert reserved <= limit * cost_budget.MICRO

    # They all end at once, each costing half its estimate: reservations become spend.
    at_once(
        10,
        lambda n: engine.release_reservations(admitted[n].policy_reservations, estimate / 2),
    )
    assert counters.budget_state(key) == (0, 10 * int(estimate / 2 * cost_budget.MICRO))


def test_requests_that_lose_an_idempotency_race_give_their_reservation_back() -> None:
    owner = factories.user("alice", role="operator")
    admin = factories.user("root", role="admin")
    priced = factories.runnable_agent(
        owner, name="priced", llm={"model": "claude-haiku-4-5", "max_tokens": 1000}
    )
    estimate = int(cost_budget._run_estimate(priced.production_version, {}) * cost_budget.MICRO)
    factories.policy(admin, "budget", "cost_budget", {"max_cost_usd": 100})
    factories.policy(admin, "slots", "concurrency", {"max_running": 100})

    def fire(_: int) -> str:
        return str(
            execution_trigger(
                TriggerRequest(
                    actor=Actor(user=owner),
                    agent=priced,
                    input={},
                    source="api",
                    idempotency_key="burst",
                )
            ).execution.pk
        )

    ids = set(at_once(30, fire))

    assert len(ids) == 1 and Execution.objects.count() == 1
    execution = Execution.objects.get()
    budget, slot = sorted(execution.policy_reservations, key=lambda r: r["kind"])
    assert counters.budget_state(budget["key"]) == (estimate, 0)
    assert counters.client().zrange(slot["key"], 0, -1) == [str(execution.pk).encode()]


def test_simultaneous_dispatchers_fill_freed_slots_exactly() -> None:
    owner = factories.user("alice", role="operator")
    admin = factories.user("root", role="admin")
    runner = factories.runnable_agent(owner)
    factories.policy(admin, "five", "concurrency", {"max_running": 5}, agent=runner)
    triggered = [
        execution_trigger(
            TriggerRequest(actor=Actor(user=owner), agent=runner, input={}, source="api")
        ).execution
        for _ in range(25)
    ]
    first, waiting = triggered[:5], triggered[5:]
    assert {e.status for e in first} == {S.QUEUED} and {e.status for e in waiting} == {S.SCHEDULED}
    for execution in first:
        engine.release_reservations(execution.policy_reservations)  # all five end
    key = first[0].policy_reservations[0]["key"]

    queued = at_once(4, lambda _: maintenance.dispatch_due(agent_id=runner.pk))

    assert sum(queued) == 5
    now_queued = set(
        Execution.objects.filter(pk__in=[e.pk for e in waiting], status=S.QUEUED).values_list(
            "pk", flat=True
        )
    )
    assert len(now_queued) == 5  # (one dispatcher takes them oldest first; several race)
    assert {m.decode() for m in counters.client().zrange(key, 0, -1)} == {
        str(pk) for pk in now_queued
    }


FIRE = """
import os, time
from collections import Counter
from controlplane.access import Actor
from agents.models import Agent
from django.contrib.auth.models import User
from executions.trigger import TriggerRequest, execution_trigger
agent = Agent.objects.get(name="runner")
user = User.objects.get(username="alice")
start = float(os.environ["FIRE_AT"])
time.sleep(max(0, start - time.time()))
print(dict(Counter(
    execution_trigger(
        TriggerRequest(actor=Actor(user=user), agent=agent, input={}, source="api")
    ).execution.status
    for _ in range(50)
)))
"""


def test_processes_triggering_at_once_share_one_limit() -> None:
    owner = factories.user("alice", role="operator")
    admin = factories.user("root", role="admin")
    runner = factories.runnable_agent(owner)
    factories.policy(
        admin, "fifty", "rate_limit", {"max_executions": 50, "window_minutes": 60}, agent=runner
    )
    start = time.time() + 8  # every process has started and built its index by then
    processes = [
        subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c", FIRE],
            cwd=ROOT,
            env=child_env(FIRE_AT=str(start)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=180) for process in processes]

    assert [p.returncode for p in processes] == [0] * 4, [err[-2000:] for _, err in outputs]
    statuses = Counter(Execution.objects.values_list("status", flat=True))
    assert statuses == {S.QUEUED: 50, S.RATE_LIMITED: 150}


def test_simultaneous_creates_of_one_name_make_one_policy_and_409s() -> None:
    admin = factories.user("root", role="admin")
    key = factories.api_key(admin)

    def create(n: int) -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        return client.post(
            "/api/v1/policies",
            {
                "policy_name": "only-one",
                "policy_type": "concurrency",
                "applies_to": "all",
                "rules": {"max_running": n + 1},
            },
            format="json",
        ).status_code

    answers = Counter(at_once(12, create))

    assert answers == {201: 1, 409: 11}
    assert Policy.objects.filter(policy_name="only-one").count() == 1
