"""End to end with real processes: a Celery worker (and beat) against the test database and
Redis. A run triggered through the API finishes; a worker killed mid-run loses nothing and
repeats no action; a Redis flushed and restarted with runs queued loses none."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.conf import settings
from werkzeug import Request, Response

from controlplane.audit import audit_verify
from controlplane.models import AuditEvent
from executions.models import Execution, ExecutionAction
from tests import factories
from tests.processes import celery_beat, celery_worker, kill_hard

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# Short clocks for the worker and beat processes, so that a lost worker is noticed in
# seconds instead of a minute.
FAST = {
    "EXECUTION_HEARTBEAT_SECONDS": "1",
    "EXECUTION_HEARTBEAT_TIMEOUT_SECONDS": "4",
    "EXECUTION_REQUEUE_AFTER_SECONDS": "2",
    "MAINTENANCE_INTERVAL_SECONDS": "1",
    "TOOL_ALLOWED_PRIVATE_NETWORKS": "127.0.0.1/32",
}


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def status_of(execution_id: Any) -> str:
    return Execution.objects.get(pk=execution_id).status


class IdempotentEndpoint:
    """A receiving service that honours Idempotency-Key: it applies each key's effect once
    and remembers every request it got."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.effects: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        key = request.headers.get("Idempotency-Key", "")
        with self.lock:
            self.requests.append(key)
            if key not in self.effects:
                self.effects[key] += 1
        return Response(json.dumps({"ok": True}), content_type="application/json")


def test_a_run_triggered_through_the_api_finishes_on_a_real_worker(db: Any) -> None:
    owner = factories.user("alice", role="operator")
    agent = factories.runnable_agent(owner, llm={"simulation": {"text": "Worker says hi."}})
    client = factories.api_client(owner)

    with celery_worker():
        response = client.post(
            "/api/v1/executions/trigger", {"agent": agent.name, "input": {}}, format="json"
        )
        assert response.status_code == 202
        execution_id = response.json()["execution_id"]
        wait_for(lambda: status_of(execution_id) == "success", 30, "the run to succeed")

    execution = Execution.objects.get(pk=execution_id)
    assert execution.output == {"text": "Worker says hi."}
    assert execution.worker.startswith("test-")
    body = client.get(f"/api/v1/executions/{execution_id}").json()
    assert body["status"] == "success" and body["steps_executed"]


def test_a_worker_killed_mid_run_loses_nothing_and_repeats_no_action(
    db: Any, httpserver: Any
) -> None:
    endpoint = IdempotentEndpoint()
    httpserver.expect_request("/effect", method="POST").respond_with_handler(endpoint)
    owner = factories.user("alice", role="operator")
    agent = factories.runnable_agent(
        owner,
        name="fragile",
        tools=[{"name": "webhook_post", "config": {"url": httpserver.url_for("/effect")}}],
        llm={
            "simulation": {
                "latency_ms": 1500,
                "turns": [
                    {
                        "tool_calls": [
                            {"name": "webhook_post", "arguments": {"payload": {"step": "A"}}}
                        ]
                    },
                    {
                        "tool_calls": [
                            {"name": "webhook_post", "arguments": {"payload": {"step": "B"}}}
                        ]
                    },
                ],
                "text": "Both done.",
            }
        },
    )
    client = factories.api_client(owner)

    with celery_beat(env=FAST):
        with celery_worker(env=FAST) as first:
            execution_id = client.post(
                "/api/v1/executions/trigger", {"agent": agent.name}, format="json"
            ).json()["execution_id"]
            # Kill the worker while the model thinks about turn 2: action A is done and
            # recorded, B is not started.
            wait_for(
                lambda: (
                    ExecutionAction.objects.filter(
                        execution_id=execution_id, status="succeeded"
                    ).count()
                    == 1
                ),
                30,
                "the first action",
            )
            kill_hard(first.process)
        assert status_of(execution_id) == "running"
        with celery_worker(env=FAST):
            wait_for(lambda: status_of(execution_id) in Execution.TERMINAL, 60, "a terminal state")

    execution = Execution.objects.get(pk=execution_id)
    assert execution.status == "success", (execution.error_type, execution.error_message)
    assert execution.attempt == 2
    keys = [f"{execution_id}:1:0", f"{execution_id}:2:0"]
    assert endpoint.requests == keys  # each action sent exactly once
    assert dict(endpoint.effects) == {key: 1 for key in keys}
    terminal = AuditEvent.objects.filter(
        target_id=execution_id, action__in=[f"execution.{s}" for s in Execution.TERMINAL]
    )
    assert list(terminal.values_list("action", flat=True)) == ["execution.success"]
    assert AuditEvent.objects.filter(
        target_id=execution_id, action="execution.queued"
    ).exists()  # the requeue
    assert audit_verify().ok


def test_redis_flushed_and_restarted_with_runs_queued_loses_none(db: Any) -> None:
    owner = factories.user("alice", role="operator")
    agent = factories.runnable_agent(owner)
    client = factories.api_client(owner)
    ids = [
        client.post("/api/v1/executions/trigger", {"agent": agent.name}, format="json").json()[
            "execution_id"
        ]
        for _ in range(5)
    ]
    broker = redis.Redis.from_url(settings.REDIS_URL)
    assert broker.llen("executions") == 5  # five doorbells rung, nobody listening yet

    broker.flushdb()
    if settings.EMBEDDED_REDIS:
        from tests.conftest import restart_embedded_redis

        restart_embedded_redis()
    assert redis.Redis.from_url(settings.REDIS_URL).llen("executions") == 0

    with celery_beat(env=FAST), celery_worker(env=FAST):
        wait_for(
            lambda: Execution.objects.filter(pk__in=ids, status="success").count() == 5,
            60,
            "every run to succeed",
        )

    assert Execution.objects.filter(pk__in=ids, attempt=1).count() == 5
