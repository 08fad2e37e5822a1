"""Events start runs: ``POST /api/v1/events`` fans out to the active subscribed agents the
publisher may run (each through the usual trigger checks; the Idempotency-Key per agent), and
the end of a run is an event (``execution.succeeded:<agent>``) that starts the agents that
follow it, with the output passed along and a chain depth guard that ends loops. Runs execute
in process through the function the Celery task calls; with a real worker at the end."""

from __future__ import annotations

from typing import Any

import pytest

from agents import services as agent_services
from controlplane.access import Actor
from controlplane.models import AuditEvent
from executions import event_triggers
from executions.models import Execution
from tests import factories
from tests.executions.test_e2e import status_of, wait_for
from tests.executions.test_runtime import run, start
from tests.processes import celery_worker

URL = "/api/v1/events"
S = Execution.Status


def listener(owner: Any, name: str, *events: str, **config: Any) -> Any:
    return factories.runnable_agent(
        owner, name=name, trigger={"type": "event", "events": list(events)}, **config
    )


def publish(client: Any, name: str, payload: Any = None, **headers: Any) -> Any:
    return client.post(URL, {"name": name, "payload": payload or {}}, format="json", **headers)


@pytest.mark.django_db
def test_an_event_starts_every_active_subscribed_agent_with_its_payload(
    owner: Any, api_for: Any
) -> None:
    first = listener(owner, "first", "invoice.paid")
    second = listener(owner, "second", "invoice.paid", "invoice.void")
    listener(owner, "other", "invoice.void")
    paused = listener(owner, "paused", "invoice.paid")
    agent_services.agent_transition(actor=Actor(user=owner), agent=paused, action="pause")
    factories.runnable_agent(owner, name="manual")  # no event trigger

    response = publish(api_for(owner), "invoice.paid", {"invoice": 7})

    assert response.status_code == 202, response.content
    body = response.json()
    assert [t["agent_name"] for t in body["triggered"]] == ["first", "second"]
    assert body["refused"] == [] and body["not_permitted"] == 0
    for item, agent in zip(body["triggered"], (first, second), strict=True):
        execution = Execution.objects.get(pk=item["execution_id"])
        assert (execution.agent, execution.trigger_source, execution.input) == (
            agent,
            "event",
            {"invoice": 7},
        )
        assert item["status"] == "queued" and item["created"] is True
    event = AuditEvent.objects.get(action="event.published")
    assert event.target_id == "invoice.paid"
    assert len(event.after["triggered"]) == 2


@pytest.mark.django_db
def test_an_event_nobody_listens_to_starts_nothing(owner: Any, api_for: Any) -> None:
    listener(owner, "first", "invoice.paid")

    body = publish(api_for(owner), "invoice.refunded").json()

    assert body["triggered"] == [] and body["refused"] == []
    assert not Execution.objects.exists()


@pytest.mark.django_db
def test_the_same_idempotency_key_returns_the_first_runs(owner: Any, api_for: Any) -> None:
    listener(owner, "first", "invoice.paid")
    client = api_for(owner)

    once = publish(client, "invoice.paid", {"n": 1}, HTTP_IDEMPOTENCY_KEY="evt-1").json()
    again = publish(client, "invoice.paid", {"n": 1}, HTTP_IDEMPOTENCY_KEY="evt-1").json()

    assert again["triggered"][0]["execution_id"] == once["triggered"][0]["execution_id"]
    assert again["triggered"][0]["created"] is False
    assert Execution.objects.count() == 1


@pytest.mark.django_db
def test_an_agent_whose_input_schema_refuses_the_payload_is_reported_and_the_rest_run(
    owner: Any, api_for: Any
) -> None:
    listener(owner, "loose", "invoice.paid")
    listener(
        owner,
        "strict",
        "invoice.paid",
        input_schema={"type": "object", "required": ["amount"]},
    )

    body = publish(api_for(owner), "invoice.paid", {"invoice": 7}).json()

    assert [t["agent_name"] for t in body["triggered"]] == ["loose"]
    [refused] = body["refused"]
    assert (refused["agent_name"], refused["code"]) == ("strict", "invalid_input")
    assert "amount" in refused["message"]


@pytest.mark.django_db
def test_agents_the_publisher_may_not_run_are_counted_not_named(
    owner: Any, other: Any, api_for: Any
) -> None:
    listener(owner, "mine", "invoice.paid")
    listener(other, "theirs", "invoice.paid")

    body = publish(api_for(owner), "invoice.paid").json()

    assert [t["agent_name"] for t in body["triggered"]] == ["mine"]
    assert body["not_permitted"] == 1
    assert "theirs" not in str(body)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "bad name!", "payload": {}}, "name"),
        ({"name": "", "payload": {}}, "name"),
        ({"name": "ok", "payload": [1, 2]}, "payload"),
        ({"name": "ok", "payload": {}, "extra": 1}, "extra"),
        ({"payload": {}}, "name"),
    ],
)
def test_bad_events_are_400_in_the_envelope(
    owner: Any, api_for: Any, payload: dict[str, Any], field: str
) -> None:
    response = api_for(owner).post(URL, payload, format="json")

    assert response.status_code == 400, response.content
    errors = response.json()["error"]["details"]["validationErrors"]
    assert field in {error["field"] for error in errors}


@pytest.mark.django_db
def test_a_viewer_may_not_publish(api_for: Any) -> None:
    viewer = factories.user("vera", role="viewer")

    response = publish(api_for(viewer), "invoice.paid")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


# --- chains -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_end_of_a_run_starts_its_followers_with_its_output(owner: Any) -> None:
    writer = factories.runnable_agent(owner, name="writer", llm={"simulation": {"text": "Draft"}})
    editor = listener(owner, "editor", "execution.succeeded:writer")
    listener(owner, "mourner", "execution.failed:writer")
    done = run(start(writer, owner))
    assert done.status == S.SUCCESS

    fanout = event_triggers.event_chain(done.pk)

    [(agent, follower, created)] = fanout.triggered
    assert (agent, created) == (editor, True)
    assert follower.parent_id == done.pk
    assert follower.trigger_source == "event"
    assert follower.input == {
        "event": "execution.succeeded:writer",
        "execution_id": str(done.pk),
        "agent": "writer",
        "status": "success",
        "output": {"text": "Draft"},
        "error_type": "",
        "error_message": "",
    }
    again = event_triggers.event_chain(done.pk)  # a re-delivered chain event
    assert again.triggered[0][1].pk == follower.pk and again.triggered[0][2] is False


@pytest.mark.django_db
def test_a_loop_of_agents_stops_at_the_maximum_depth(owner: Any, settings: Any) -> None:
    settings.EVENT_CHAIN_MAX_DEPTH = 3
    echo = listener(owner, "echo", "execution.succeeded:echo")  # follows itself
    current = run(start(echo, owner))
    chain = [current]
    while True:
        fanout = event_triggers.event_chain(current.pk)
        if not fanout.triggered:
            break
        current = run(fanout.triggered[0][1])
        chain.append(current)

    assert len(chain) == 3
    assert [c.parent_id for c in chain] == [None, chain[0].pk, chain[1].pk]
    assert "EVENT_CHAIN_MAX_DEPTH 3" in fanout.stopped
    stopped = AuditEvent.objects.filter(action="event.published").order_by("id").last()
    assert stopped.after["stopped"] == fanout.stopped


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_chain_runs_on_a_real_worker() -> None:
    owner = factories.user("alice", role="operator")
    writer = factories.runnable_agent(owner, name="writer", llm={"simulation": {"text": "Draft"}})
    listener(owner, "editor", "execution.succeeded:writer")
    client = factories.api_client(owner)

    with celery_worker():
        first = client.post(
            "/api/v1/executions/trigger", {"agent": writer.name}, format="json"
        ).json()["execution_id"]
        wait_for(lambda: status_of(first) == "success", 30, "the writer")
        wait_for(lambda: Execution.objects.filter(parent_id=first).exists(), 30, "the follower")
        follower = Execution.objects.get(parent_id=first)
        wait_for(lambda: status_of(follower.pk) == "success", 30, "the editor")

    follower.refresh_from_db()
    assert follower.agent.name == "editor"
    assert follower.input["output"] == {"text": "Draft"}
