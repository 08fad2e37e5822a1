"""Live pages over a real websocket: the real ASGI application (session auth, origin check,
routing) driven by Channels' WebsocketCommunicator, the real Redis channel layer, and the
services publishing after commit. Who may follow what is checked on connect; changes arrive
as partials rendered for the user, or as "refresh" for the lists."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from console.asgi import application
from executions.models import Execution
from executions.services import execution_transition
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

S = Execution.Status
WAIT = 5  # seconds a message may take (it takes milliseconds; the machine is noisy)


def session_headers(user: Any) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return [
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        (b"origin", b"http://127.0.0.1"),
    ]


def socket(user: Any | None, topics: str) -> WebsocketCommunicator:
    """A websocket to ``/ws/live/`` as ``user`` (signed in with a real session cookie)."""
    headers = session_headers(user) if user else [(b"origin", b"http://127.0.0.1")]
    return WebsocketCommunicator(application, f"/ws/live/?topics={topics}", headers=headers)


def scenario(steps: Any) -> None:
    """Run an async test body in one event loop (the consumer lives as long as it does);
    the services, which are synchronous, are called through ``in_thread``."""
    async_to_sync(steps)()


in_thread = database_sync_to_async


@pytest.fixture
def owner() -> Any:
    return factories.user("olga", role="operator")


@pytest.fixture
def outsider() -> Any:
    return factories.user("otto", role="operator")


@pytest.fixture
def execution(owner: Any) -> Execution:
    agent = factories.runnable_agent(owner)
    client = factories.api_client(owner)
    response = client.post(f"/api/v1/agents/{agent.name}/execute", {"input": {}}, format="json")
    return Execution.objects.get(pk=response.json()["execution_id"])


def test_a_visitor_who_is_not_signed_in_is_refused(execution: Execution) -> None:
    async def steps() -> None:
        connected, code = await socket(None, f"execution:{execution.pk}").connect()
        assert (connected, code) == (False, 4401)

    scenario(steps)


@pytest.mark.parametrize("topic", ["execution:{id}", "agent:{agent}", "nonsense", "execution:x"])
def test_a_user_who_may_not_see_the_object_is_refused(
    outsider: Any, execution: Execution, topic: str
) -> None:
    refused = socket(outsider, topic.format(id=execution.pk, agent=execution.agent_id))

    async def steps() -> None:
        assert await refused.connect() == (False, 4403)

    scenario(steps)


def test_a_user_without_the_approvals_role_may_not_follow_the_queue() -> None:
    refused = socket(factories.user("nobody"), "approvals")  # signed in, no role

    async def steps() -> None:
        assert await refused.connect() == (False, 4403)

    scenario(steps)


def test_the_execution_page_gets_its_section_on_connect_and_on_each_change(
    owner: Any, execution: Execution
) -> None:
    page = socket(owner, f"execution:{execution.pk}")

    async def steps() -> None:
        assert (await page.connect())[0]
        first = await page.receive_json_from(WAIT)  # the state now: a reconnect resyncs
        assert first["target"] == "execution"
        assert 'data-status="queued"' in first["html"]
        await in_thread(execution_transition)(execution_id=execution.pk, to=S.RUNNING)
        changed = await page.receive_json_from(WAIT)
        assert 'data-status="running"' in changed["html"]
        assert 'id="execution-status"' in changed["html"]
        await page.send_json_to({"resync": True})
        assert 'data-status="running"' in (await page.receive_json_from(WAIT))["html"]
        await page.disconnect()

    scenario(steps)


def test_a_step_appears_on_the_execution_page_as_it_is_recorded(
    owner: Any, execution: Execution
) -> None:
    from executions.recording import RunRecorder

    page = socket(owner, f"execution:{execution.pk}")

    def record() -> None:
        RunRecorder(Execution.objects.get(pk=execution.pk), fresh=False).add_step(
            name="lookup-order", kind="tool_call", status="success", started_at=timezone.now()
        )

    async def steps() -> None:
        await page.connect()
        await page.receive_json_from(WAIT)
        await in_thread(record)()
        assert "lookup-order" in (await page.receive_json_from(WAIT))["html"]
        await page.disconnect()

    scenario(steps)


def test_a_rolled_back_change_is_not_published(owner: Any, execution: Execution) -> None:
    from django.db import transaction

    page = socket(owner, f"execution:{execution.pk}")

    def move_and_roll_back() -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            execution_transition(execution_id=execution.pk, to=S.RUNNING)
            raise RuntimeError("rolled back")

    async def steps() -> None:
        await page.connect()
        await page.receive_json_from(WAIT)
        await in_thread(move_and_roll_back)()
        assert await page.receive_nothing(0.5)
        await page.disconnect()

    scenario(steps)


def test_the_agent_page_sees_a_new_run_appear(owner: Any, execution: Execution) -> None:
    page = socket(owner, f"agent:{execution.agent_id}")
    client = factories.api_client(owner)

    def run_again() -> str:
        url = f"/api/v1/agents/{execution.agent.name}/execute"
        return client.post(url, {"input": {}}, format="json").json()["execution_id"]

    async def steps() -> None:
        assert (await page.connect())[0]
        assert (await page.receive_json_from(WAIT))["target"] == "recent-runs"
        new_id = await in_thread(run_again)()
        update = await page.receive_json_from(WAIT)
        assert update["target"] == "recent-runs" and new_id in update["html"]
        await page.disconnect()

    scenario(steps)


def test_the_executions_feed_refreshes_only_for_runs_the_user_may_see(
    owner: Any, outsider: Any, execution: Execution
) -> None:
    mine, theirs = socket(owner, "executions"), socket(outsider, "executions")

    async def steps() -> None:
        assert (await mine.connect())[0] and (await theirs.connect())[0]
        assert await mine.receive_json_from(WAIT) == {"refresh": "executions"}  # resync
        assert await theirs.receive_json_from(WAIT) == {"refresh": "executions"}
        await in_thread(execution_transition)(execution_id=execution.pk, to=S.RUNNING)
        assert await mine.receive_json_from(WAIT) == {"refresh": "executions"}
        assert await theirs.receive_nothing(0.5)
        await mine.disconnect()
        await theirs.disconnect()

    scenario(steps)


def test_the_approval_queue_hears_a_new_request_and_its_decision(owner: Any) -> None:
    from approvals.services import approval_decide
    from controlplane.access import Actor
    from tests.approvals.factories import approval_policy, pending_run

    boss = factories.user("boss", role="operator", email="boss@company.com")
    agent = factories.runnable_agent(owner)
    approval_policy(factories.user("policy-admin", role="admin"))
    queue = socket(boss, "approvals")

    async def steps() -> None:
        assert (await queue.connect())[0]
        assert await queue.receive_json_from(WAIT) == {"refresh": "approvals"}
        request = await in_thread(pending_run)(agent, owner)
        assert await queue.receive_json_from(WAIT) == {"refresh": "approvals"}
        await in_thread(approval_decide)(actor=Actor(user=boss), request=request, verdict="approve")
        assert await queue.receive_json_from(WAIT) == {"refresh": "approvals"}
        await queue.disconnect()

    scenario(steps)


IDLE = 7  # seconds: past redis-py's default 5 s socket timeout and the layer's 5 s blocking read


def test_a_socket_left_idle_still_hears_the_next_change(owner: Any, execution: Execution) -> None:
    page = socket(owner, f"execution:{execution.pk}")

    async def steps() -> None:
        assert (await page.connect())[0]
        await page.receive_json_from(WAIT)
        await asyncio.sleep(IDLE)  # the channel layer's blocking read waits on Redis meanwhile
        await in_thread(execution_transition)(execution_id=execution.pk, to=S.RUNNING)
        assert 'data-status="running"' in (await page.receive_json_from(WAIT))["html"]
        await page.disconnect()

    scenario(steps)


def test_a_refused_socket_closes_without_an_error(outsider: Any, execution: Execution) -> None:
    page = socket(outsider, f"execution:{execution.pk}")

    async def steps() -> None:
        assert (await page.connect()) == (False, 4403)
        await asyncio.sleep(IDLE)
        await page.disconnect()  # re-raises what the application died of, if it did

    scenario(steps)
