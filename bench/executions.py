"""``manage.py bench executions``: each figure next to its floor, measured in the same run.

- throughput: bare Celery no-op tasks drained per second vs our executions (trigger →
  success, simulated provider at zero latency) per second, both from a pre-filled queue on
  the Procfile's worker;
- dispatch latency: trigger → running vs the bare Celery round trip (enqueue → task starts),
  p50 and p99, one at a time on an idle worker;
- trigger API: authenticated, validated, written and enqueued triggers per second vs the
  barest Django JSON view on the same server;
- in flight: 500 executions whose model takes 2 s, on one worker machine, first start to
  last finish, vs one such run alone.

Runs inside ``bench.harness.isolated_environment`` (see there).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import redis
from django.conf import settings
from django.db.models import Max, Min

from agents.models import Agent
from bench.harness import (
    Load,
    active_agent,
    celery_worker,
    free_port,
    json_body,
    metric,
    percentile,
    requests_per_second,
    web_server,
)
from bench.tasks import bench_noop
from controlplane import services as core_services
from controlplane.access import Actor
from executions.models import Execution
from executions.trigger import TriggerRequest, execution_trigger

WORKER_CONCURRENCY = 32  # the Procfile's default


def _agent(actor: Actor, name: str, latency_ms: int) -> Agent:
    return active_agent(
        actor,
        {
            "name": name,
            "version": "1.0.0",
            "owner_email": "bench@localhost",
            "runtime": "llm",
            "llm": {
                "provider": "simulated",
                "simulation": {"latency_ms": latency_ms, "text": "ok"},
            },
            "input_schema": {
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"],
            },
            "timeout_seconds": 120,
        },
    )


def _trigger_many(actor: Actor, agent: Agent, count: int) -> list[UUID]:
    return [
        execution_trigger(
            TriggerRequest(actor=actor, agent=agent, input={"n": n}, source="api")
        ).execution.pk
        for n in range(count)
    ]


def _wait_terminal(ids: list[UUID], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while Execution.objects.filter(pk__in=ids).exclude(status__in=Execution.TERMINAL).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"executions did not finish within {timeout}s")
        time.sleep(0.05)
    failed = Execution.objects.filter(pk__in=ids).exclude(status="success").count()
    if failed:
        raise RuntimeError(f"{failed} benchmark executions did not succeed")


def _span_seconds(ids: list[UUID]) -> float:
    span = Execution.objects.filter(pk__in=ids).aggregate(
        first=Min("started_at"), last=Max("completed_at")
    )
    first: datetime = span["first"]
    last: datetime = span["last"]
    return (last - first).total_seconds()


def _noop_drain(client: redis.Redis, count: int) -> float:
    client.delete("bench:noop:count", "bench:noop:first", "bench:noop:last")
    for _ in range(count):
        bench_noop.apply_async(queue="executions")
    with celery_worker(concurrency=WORKER_CONCURRENCY):
        deadline = time.monotonic() + 120
        while int(client.get("bench:noop:count") or 0) < count:
            if time.monotonic() > deadline:
                raise RuntimeError("the no-op tasks did not drain")
            time.sleep(0.02)
    # Both are set: the tasks that counted set them.
    last = float(cast(bytes, client.get("bench:noop:last")))
    first = float(cast(bytes, client.get("bench:noop:first")))
    return count / (last - first)


def throughput(actor: Actor, agent: Agent, client: redis.Redis, count: int) -> dict[str, Any]:
    noop_rate = _noop_drain(client, count)
    ids = _trigger_many(actor, agent, count)  # queued, their messages waiting
    with celery_worker(concurrency=WORKER_CONCURRENCY):
        _wait_terminal(ids, timeout=600)
    rate = count / _span_seconds(ids)
    return metric(
        rate, noop_rate, unit="runs/s vs no-op tasks/s", target="ratio >= 0.5", better="higher"
    )


def dispatch_latency(
    actor: Actor, agent: Agent, client: redis.Redis, samples: int
) -> dict[str, dict[str, Any]]:
    """One at a time on an idle worker: trigger → running (from the trigger call), and
    queued → running (from the moment the trigger returned: the run committed and its
    message sent), next to the bare Celery round trip (enqueue → the task starts)."""
    ours: list[float] = []
    dispatch: list[float] = []
    with celery_worker(concurrency=WORKER_CONCURRENCY):
        client.delete("bench:noop:latency")
        for index in range(samples):
            bench_noop.apply_async(args=(time.time(),), queue="executions")
            deadline = time.monotonic() + 10
            while client.llen("bench:noop:latency") <= index:
                if time.monotonic() > deadline:
                    raise RuntimeError("a no-op task was not run")
                time.sleep(0.0005)
        bare = [float(value) * 1000 for value in client.lrange("bench:noop:latency", 0, -1)]
        for index in range(samples):
            sent = time.time()
            pk = execution_trigger(
                TriggerRequest(actor=actor, agent=agent, input={"n": index}, source="api")
            ).execution.pk
            queued = time.time()
            _wait_terminal([pk], timeout=30)
            # It succeeded (_wait_terminal), so it started.
            started = cast(
                datetime, Execution.objects.values_list("started_at", flat=True).get(pk=pk)
            )
            ours.append((started.timestamp() - sent) * 1000)
            dispatch.append((started.timestamp() - queued) * 1000)
    floor50, floor99 = percentile(bare, 50), percentile(bare, 99)
    return {
        "dispatch_latency_p50_ms": metric(
            percentile(ours, 50),
            floor50,
            unit="ms, trigger → running",
            target="ratio <= 2",
            better="lower",
        ),
        "dispatch_latency_p99_ms": metric(
            percentile(ours, 99),
            floor99,
            unit="ms, trigger → running",
            target="(reported)",
            better="lower",
        ),
        "queued_to_running_p50_ms": metric(
            percentile(dispatch, 50),
            floor50,
            unit="ms, 202 → running",
            target="(reported)",
            better="lower",
        ),
        "queued_to_running_p99_ms": metric(
            percentile(dispatch, 99),
            floor99,
            unit="ms, 202 → running",
            target="(reported)",
            better="lower",
        ),
    }


def trigger_api(actor: Actor, agent: Agent, seconds: float) -> dict[str, Any]:
    _, key = core_services.api_key_create(actor=actor, name="bench", role="admin")
    port = free_port()
    with web_server(port):
        bare, _ = requests_per_second(
            Load(port, "GET", "/bench/bare", None, {}, seconds, threads=8, expect_status=200)
        )
        headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
        body = json_body({"agent": agent.name, "input": {"n": 1}})
        ours, errors = requests_per_second(
            Load(
                port,
                "POST",
                "/api/v1/executions/trigger",
                body,
                headers,
                seconds,
                threads=8,
                expect_status=202,
            )
        )
    if errors:
        raise RuntimeError(f"{errors} trigger requests failed")
    return metric(ours, bare, unit="requests/s", target="ratio >= 0.3", better="higher")


def in_flight(actor: Actor, agent: Agent, count: int) -> dict[str, Any]:
    with celery_worker(concurrency=count):
        alone = _trigger_many(actor, agent, 1)
        _wait_terminal(alone, timeout=60)
    single = _span_seconds(alone)
    ids = _trigger_many(actor, agent, count)
    with celery_worker(concurrency=count):
        _wait_terminal(ids, timeout=300)
    return metric(_span_seconds(ids), single, unit="s", target="value <= 10 s", better="lower")


def run(*, count: int, samples: int, seconds: float, in_flight_count: int) -> dict[str, Any]:
    """All the figures (inside the throwaway environment)."""
    from django.contrib.auth.models import User

    actor = Actor(user=User.objects.create_superuser("bench", "bench@localhost", None))
    quick = _agent(actor, "bench-quick", latency_ms=0)
    slow = _agent(actor, "bench-slow", latency_ms=2000)
    client = redis.Redis.from_url(settings.REDIS_URL)
    results: dict[str, Any] = {
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    }
    results["executions_per_second"] = throughput(actor, quick, client, count)
    results.update(dispatch_latency(actor, quick, client, samples))
    results["trigger_api_requests_per_second"] = trigger_api(actor, quick, seconds)
    results[f"in_flight_{in_flight_count}_at_2s_makespan_s"] = in_flight(
        actor, slow, in_flight_count
    )
    return results
