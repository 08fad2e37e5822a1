"""``manage.py bench pages`` and ``manage.py bench live``: each figure next to its floor,
measured in the same run, inside the throwaway environment.

pages — with ``--rows`` executions (default 100,000) in the database, over 20 agents, one a
minute back from now (about 70 days; 1 in 10 failed, the newest 20 still running), the
console's pages requested in process through Django's test client as a signed-in operator,
in turns (each page once a round): p95 of each page vs the p95 of the cheapest signed-in
page (the approvals count partial: the session, the middleware and one query — what any
page costs before its own work).

live — ``--sockets`` websockets (default 100) to the real ASGI server (uvicorn, as the
Procfile runs it) following the executions feed as signed-in operators; a run's status
changes and commits, and the time from the commit to each socket's message is taken: p50 /
p99 over all sockets and changes, vs the same sockets receiving a bare ``group_send`` of the
same message (the channel layer and the consumer, without the database and the service).
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone

from bench.harness import active_agent, metric, percentile

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer
    from django.contrib.auth.models import User

    from agents.models import Agent, AgentVersion
    from executions.models import Execution

# What a socket heard: (round, arrival time, the feed it was told to refresh).
Heard = tuple[int, float, str]


def _setup(rows: int) -> tuple[User, list[Agent], Execution | None]:
    """An operator owning 20 active agents with ``rows`` executions among them."""
    from django.contrib.auth.models import Group, User

    from controlplane.access import Actor
    from controlplane.roles import Role
    from executions.models import Execution, ExecutionStep

    user = User.objects.create_user("operator", "operator@localhost", "x", is_staff=True)
    user.groups.add(Group.objects.get(name=Role.OPERATOR))
    actor = Actor(user=user)
    agents = []
    for n in range(20):
        agents.append(
            active_agent(
                actor,
                {
                    "name": f"bench-{n:02d}",
                    "version": "1.0.0",
                    "owner_email": "operator@localhost",
                    "llm": {"provider": "simulated"},
                },
            )
        )
    now = timezone.now()
    statuses = ["success"] * 9 + ["failed"]
    batch: list[Execution] = []
    for i in range(rows):
        agent = agents[i % len(agents)]
        status = "running" if i < len(agents) else statuses[i % len(statuses)]
        batch.append(
            Execution(
                agent=agent,
                agent_version=agent.production_version,
                trigger_source="api",
                trigger_user="operator",
                status=status,
                input={"n": i},
                llm_provider="simulated",
                llm_model="simulated-1",
                total_tokens=120,
                estimated_cost_usd="0.000400",
                total_latency_ms=800 + i % 400,
                error_type="llm_error" if status == "failed" else "",
                completed_at=None if status == "running" else now - timedelta(minutes=i),
                trace_id=uuid.uuid4().hex,
            )
        )
        if len(batch) == 5000:
            Execution.objects.bulk_create(batch)
            batch = []
    Execution.objects.bulk_create(batch)
    # created_at is auto_now_add (bulk_create sets it to now): spread the runs one a minute
    # back from now, as a busy month of runs would be.
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "UPDATE executions_execution SET created_at = "
                "%s - ((input->>'n')::int * interval '1 minute')",
                [now],
            )
        else:
            cursor.execute(
                "UPDATE executions_execution SET created_at = "
                "datetime(%s, '-' || json_extract(input, '$.n') || ' minutes')",
                [now.strftime("%Y-%m-%d %H:%M:%S")],
            )
    sample = Execution.objects.order_by("-created_at").first()
    if sample is None:
        return user, agents, None
    ExecutionStep.objects.bulk_create(
        ExecutionStep(
            execution=sample,
            index=n + 1,
            name=f"step {n}",
            kind="llm_call",
            status="success",
            started_at=now,
        )
        for n in range(20)
    )
    with connection.cursor() as cursor:
        # Fresh statistics after the bulk load, and on PostgreSQL the dead row versions the
        # UPDATE above left cleared, as autovacuum would: 100,000 of them at the end of the
        # created_at index make the planner's probe of its end cost ~2 ms a query.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    if connection.vendor == "postgresql":
        # The load's writes flushed now rather than by a checkpoint in the middle of the
        # figures (it needs a superuser or pg_checkpoint: without, measured as it comes).
        try:
            with connection.cursor() as cursor:
                cursor.execute("CHECKPOINT")
        except DatabaseError:
            pass
    return user, agents, sample


def _p95s(client: Client, paths: dict[str, str], samples: int) -> dict[str, float]:
    """The p95 of each page, asked for in turns (every page once a round, ``samples``
    rounds), so that a slow spell of the machine falls on every page alike rather than on
    the one being measured then."""
    for path in paths.values():
        for _ in range(3):  # warm the caches (templates, policy index, query plans)
            assert client.get(path).status_code == 200, path
    timings: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(samples):
        for name, path in paths.items():
            start = time.perf_counter()
            response = client.get(path)
            timings[name].append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, path
    return {name: percentile(values, 95) for name, values in timings.items()}


def run_pages(*, rows: int, samples: int) -> dict[str, Any]:
    user, agents, newest = _setup(rows)
    sample = cast("Execution", newest)  # the newest of the ``rows`` (a page needs rows)
    # What the load left in this process is not the pages' garbage: out of the collector's
    # way (its full passes over it put 100 ms requests in the p95 of whichever page they
    # fell on; a server process has no such heap).
    gc.collect()
    gc.freeze()
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    pages = {
        "executions_list": "/executions/",
        "executions_list_filtered": f"/executions/?agent={agents[3].name}&status=failed",
        "execution_page_20_steps": f"/executions/{sample.pk}/",
        "agent_page": f"/agents/{agents[0].name}/",
        "agents_list": "/agents/",
        "approvals_queue": "/approvals/",
        "dashboard": "/dashboard/",
        "audit_log": "/audit/",
    }
    p95s = _p95s(client, {"floor": "/approvals/nav-count", **pages}, samples)
    results: dict[str, Any] = {"database": f"{connection.vendor}, {rows:,} executions"}
    for name in pages:
        results[f"{name}_p95_ms"] = metric(
            p95s[name], p95s["floor"], unit="ms", target="p95 < 50 ms", better="lower"
        )
    return results


# --- live -------------------------------------------------------------------------------------


def run_live(*, sockets: int, changes: int) -> dict[str, Any]:
    import websockets
    from channels.layers import get_channel_layer

    from bench.harness import free_port, web_server
    from controlplane.live import MESSAGE_TYPE
    from executions.models import Execution
    from executions.services import execution_transition

    user, agents, _ = _setup(0)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    runs = [
        Execution.objects.create(
            agent=agents[0],
            # active_agent promoted a version to production
            agent_version=cast("AgentVersion", agents[0].production_version),
            trigger_source="api",
            status="queued",
            input={},
            trace_id=uuid.uuid4().hex,
        )
        for _ in range(changes)
    ]
    port = free_port()
    received: list[Heard] = []
    lock = threading.Lock()

    async def follow(ready: asyncio.Event, counter: list[int], stop: asyncio.Event) -> None:
        url = f"ws://127.0.0.1:{port}/ws/live/?topics=executions"
        async with websockets.connect(
            url, additional_headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}
        ) as ws:
            await ws.recv()  # the resync sent on connect
            counter[0] += 1
            if counter[0] == sockets:
                ready.set()
            while not stop.is_set():
                try:
                    message = await asyncio.wait_for(ws.recv(), timeout=0.2)
                except TimeoutError:
                    continue
                arrived = time.perf_counter()
                body = json.loads(message)
                with lock:
                    received.append((current[0], arrived, body.get("refresh", "")))

    current = [0]

    async def drive() -> tuple[list[float], list[float]]:
        ready, stop = asyncio.Event(), asyncio.Event()
        counter = [0]
        tasks = [asyncio.create_task(follow(ready, counter, stop)) for _ in range(sockets)]
        await asyncio.wait_for(ready.wait(), timeout=120)
        layer = cast("BaseChannelLayer", get_channel_layer())  # the settings configure one
        commit_latencies: list[float] = []
        bare_latencies: list[float] = []
        loop = asyncio.get_running_loop()
        for index, execution in enumerate(runs):
            # The service: a transition committed (the publish happens after commit).
            current[0] = 2 * index + 1
            sent = await loop.run_in_executor(None, _commit_transition, execution.pk)
            commit_latencies += await _collect(current[0], sent, sockets, received, lock)
            # The floor: the same message sent bare to the same group.
            current[0] = 2 * index + 2
            sent = time.perf_counter()
            await layer.group_send(
                "executions",
                {"type": MESSAGE_TYPE, "kind": "execution", "id": str(execution.pk),
                 "agent_id": str(execution.agent_id), "status": "running"},
            )  # fmt: skip
            bare_latencies += await _collect(current[0], sent, sockets, received, lock)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return commit_latencies, bare_latencies

    def _commit_transition(pk: UUID) -> float:
        with transaction.atomic():
            execution_transition(execution_id=pk, to="running")
            started = time.perf_counter()  # the commit starts here; publish follows it
        connection.close()
        return started

    with web_server(port):
        commit, bare = asyncio.run(drive())
    return {
        "database": f"{connection.vendor}, {sockets} sockets",
        "commit_to_socket_p50_ms": metric(
            percentile(commit, 50), percentile(bare, 50), unit="ms", target="—", better="lower"
        ),
        "commit_to_socket_p99_ms": metric(
            percentile(commit, 99),
            percentile(bare, 99),
            unit="ms",
            target="p99 < 100 ms",
            better="lower",
        ),
    }


async def _collect(
    round_: int, sent: float, sockets: int, received: list[Heard], lock: threading.Lock
) -> list[float]:
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:
        with lock:
            arrivals = [at for (r, at, _) in received if r == round_]
        if len(arrivals) >= sockets:
            return [(at - sent) * 1000 for at in arrivals]
        await asyncio.sleep(0.001)
    raise RuntimeError(f"only {len(arrivals)} of {sockets} sockets heard change {round_}")
