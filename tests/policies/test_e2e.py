"""Policies across real processes: a policy made through the API reaches a running worker's
index at once, and runs waiting for a concurrency slot are dispatched by the worker as
slots free, with no beat."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from executions.models import Execution
from tests import factories
from tests.executions.test_e2e import status_of, wait_for
from tests.executions.test_runtime import Recorder
from tests.processes import celery_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TRIGGER = "/api/v1/executions/trigger"


def test_a_new_policy_reaches_the_running_worker_at_its_next_tool_call(httpserver: Any) -> None:
    hook = Recorder()
    httpserver.expect_request("/hook", method="POST").respond_with_handler(hook)
    owner = factories.user("alice", role="operator")
    admin = factories.user("root", role="admin")
    agent = factories.runnable_agent(
        owner,
        name="poster",
        tools=[{"name": "webhook_post", "config": {"url": httpserver.url_for("/hook")}}],
        llm={
            "simulation": {
                "turns": [
                    {"tool_calls": [{"name": "webhook_post", "arguments": {"payload": {"n": 1}}}]}
                ],
                "text": "Posted.",
            }
        },
    )
    client = factories.api_client(owner)
    admin_client = factories.api_client(admin)

    with celery_worker(env={"TOOL_ALLOWED_PRIVATE_NETWORKS": "127.0.0.1/32"}):
        first = client.post(TRIGGER, {"agent": agent.name}, format="json").json()["execution_id"]
        wait_for(lambda: status_of(first) == "success", 30, "the first run")
        assert [r["json"] for r in hook.requests] == [{"n": 1}]  # the index has no policy yet

        created = admin_client.post(
            "/api/v1/policies",
            {
                "policy_name": "no-webhooks",
                "policy_type": "destination",
                "applies_to": "all",
                "rules": {"denied_destinations": ["webhook"]},
            },
            format="json",
        )
        assert created.status_code == 201, created.content
        second = client.post(TRIGGER, {"agent": agent.name}, format="json").json()["execution_id"]
        wait_for(lambda: status_of(second) == "success", 30, "the second run")

    assert len(hook.requests) == 1  # the second call was never sent
    action = Execution.objects.get(pk=second).actions.get()
    assert action.status == "refused"
    assert action.error == "Refused by policy no-webhooks: webhook is a denied destination"


def test_runs_waiting_for_a_slot_run_one_after_another_as_slots_free() -> None:
    owner = factories.user("alice", role="operator")
    admin = factories.user("root", role="admin")
    agent = factories.runnable_agent(
        owner, llm={"simulation": {"text": "Done.", "latency_ms": 300}}
    )
    factories.policy(admin, "one-at-a-time", "concurrency", {"max_running": 1}, agent=agent)
    client = factories.api_client(owner)
    ids = [
        client.post(TRIGGER, {"agent": agent.name}, format="json").json()["execution_id"]
        for _ in range(4)
    ]
    assert [status_of(pk) for pk in ids] == ["queued", "scheduled", "scheduled", "scheduled"]

    with celery_worker(concurrency=4):
        wait_for(lambda: all(status_of(pk) == "success" for pk in ids), 60, "every run to succeed")

    runs = list(Execution.objects.filter(pk__in=ids).order_by("started_at"))
    assert [str(run.pk) for run in runs] == ids  # in the order they were triggered
    for earlier, later in itertools.pairwise(runs):
        assert later.started_at >= earlier.completed_at  # never two at once
