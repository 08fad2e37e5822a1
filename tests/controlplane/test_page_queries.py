"""The console's pages cost a fixed number of queries, however many rows there are: each
page is asked for with a few rows and with many, and the count is the same (and under a
bound, with ``django_assert_max_num_queries``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import ApprovalRequest
from executions.models import Execution, ExecutionLog, ExecutionStep
from tests import factories
from tests.approvals.factories import approval_policy, pending_run

pytestmark = pytest.mark.django_db


def runs(agent: Any, count: int, *, status: str = "success") -> list[Execution]:
    now = timezone.now()
    return Execution.objects.bulk_create(
        Execution(
            agent=agent,
            agent_version=agent.production_version,
            trigger_source="api",
            status=status,
            input={"n": n},
            trace_id=uuid.uuid4().hex,
            created_at=now,
            llm_provider="simulated",
        )
        for n in range(count)
    )


def timeline(execution: Execution, count: int) -> None:
    now = timezone.now()
    ExecutionStep.objects.bulk_create(
        ExecutionStep(
            execution=execution, index=n + 1, name=f"step {n}", kind="llm_call",
            status="success", started_at=now,
        )
        for n in range(count)
    )  # fmt: skip
    ExecutionLog.objects.bulk_create(
        ExecutionLog(execution=execution, message=f"line {n}", at=now) for n in range(count)
    )


def queries(client: Client, path: str) -> int:
    client.get(path)  # process-wide caches (content types, the policy index) warm up once
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return len(captured)


@pytest.fixture
def world(owner: Any) -> dict[str, Any]:
    agents = [factories.runnable_agent(owner, name=f"agent-{n}", team="team-a") for n in range(3)]
    return {"owner": owner, "agents": agents}


PAGES: dict[str, Callable[[dict[str, Any]], str]] = {
    "executions list": lambda w: "/executions/",
    "executions list filtered": lambda w: "/executions/?status=success&agent=agent-1",
    "execution page": lambda w: f"/executions/{w['sample'].pk}/",
    "agent page": lambda w: "/agents/agent-0/",
    "agents list": lambda w: "/agents/",
    "approvals queue": lambda w: "/approvals/",
    "audit log": lambda w: "/audit/",
}


@pytest.mark.parametrize("name", list(PAGES))
def test_a_page_costs_the_same_queries_with_few_rows_and_with_many(
    client: Client,
    world: dict[str, Any],
    admin_user: Any,
    name: str,
    django_assert_max_num_queries: Any,
) -> None:
    approval_policy(admin_user, approvers=["alice@company.com"])
    client.force_login(world["owner"])
    counts = []
    for size in (3, 60):
        for agent in world["agents"]:
            runs(agent, size)
        sample = runs(world["agents"][0], 1)[0]
        timeline(sample, size)
        for _ in range(size // 20 + 1):
            pending_run(world["agents"][1], world["owner"])
        world["sample"] = sample
        counts.append(queries(client, PAGES[name](world)))
    assert ApprovalRequest.objects.count() > 3
    assert counts[0] == counts[1], (
        f"{name}: {counts[0]} queries with few rows, {counts[1]} with many"
    )
    with django_assert_max_num_queries(30):
        client.get(PAGES[name](world))
