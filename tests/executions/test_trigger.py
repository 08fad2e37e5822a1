"""Triggering: the API, the agent's execute action, the webhook; who may; input checked
against the schema; only runnable agents; idempotency keys, also under concurrency."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from agents import services as agent_services
from agents.webhooks import agent_webhook_secret_rotate, sign
from controlplane.access import Actor
from controlplane.models import AuditEvent
from executions.models import Execution
from tests import factories

pytestmark = pytest.mark.django_db

TRIGGER = "/api/v1/executions/trigger"
SCHEMA = {
    "type": "object",
    "properties": {
        "email": {"type": "string", "format": "email"},
        "count": {"type": "integer", "minimum": 1},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["email"],
    "additionalProperties": False,
}


@pytest.fixture
def runner(owner: Any, other: Any) -> Any:
    return factories.runnable_agent(owner, team="team-a", input_schema=SCHEMA)


def test_trigger_answers_202_with_the_execution(
    runner: Any, owner: Any, api_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_for(owner).post(
            TRIGGER, {"agent": "runner", "input": {"email": "a@b.co"}}, format="json"
        )

    assert response.status_code == 202, response.content
    body = response.json()
    execution = Execution.objects.get()
    assert body["execution_id"] == str(execution.pk)
    assert body["status"] == "queued"
    assert body["agent_name"] == "runner"
    assert body["agent_version"] == "1.0.0"
    assert body["is_staging"] is False
    assert body["links"]["self"] == f"/api/v1/executions/{execution.pk}"
    assert execution.trigger_source == "api"
    assert execution.trigger_user == "alice"
    assert execution.llm_provider == "simulated"
    assert execution.agent_version == runner.production_version
    # Enqueued only after commit: one callback that sends the message.
    assert len(callbacks) == 2  # the publish hook and the enqueue
    assert AuditEvent.objects.filter(
        action="execution.created", target_id=str(execution.pk)
    ).exists()


def test_execute_on_the_agent(runner: Any, owner: Any, api_for: Any) -> None:
    response = api_for(owner).post(
        f"/api/v1/agents/{runner.pk}/execute", {"input": {"email": "a@b.co"}}, format="json"
    )

    assert response.status_code == 202
    assert Execution.objects.get().trigger_source == "api"


@pytest.mark.parametrize(
    ("who", "status"), [("owner", 202), ("other", 202), ("outsider", 404), ("viewer", 403)]
)
def test_who_may_run(request: Any, runner: Any, api_for: Any, who: str, status: int) -> None:
    response = api_for(request.getfixturevalue(who)).post(
        TRIGGER, {"agent": runner.name, "input": {"email": "a@b.co"}}, format="json"
    )

    assert response.status_code == status
    assert Execution.objects.count() == (1 if status == 202 else 0)


def test_input_is_checked_against_the_schema_with_every_failing_path(
    runner: Any, owner: Any, api_for: Any
) -> None:
    response = api_for(owner).post(
        TRIGGER,
        {
            "agent": "runner",
            "input": {"email": "not-an-email", "count": 0, "tags": ["x", 3], "extra": 1},
        },
        format="json",
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    fields = {item["field"]: item["code"] for item in error["details"]["validationErrors"]}
    assert fields == {
        "input": "additionalProperties",
        "input.email": "format",
        "input.count": "minimum",
        "input.tags[1]": "type",
    }
    assert not Execution.objects.exists()


def test_missing_required_input(runner: Any, owner: Any, api_for: Any) -> None:
    response = api_for(owner).post(TRIGGER, {"agent": "runner"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["validationErrors"][0]["code"] == "required"


@pytest.mark.parametrize("body", [{"input": {}}, {"agent": 5}, {"agent": "runner", "inputs": {}}])
def test_bad_trigger_body_is_400(
    runner: Any, owner: Any, api_for: Any, body: dict[str, Any]
) -> None:
    assert api_for(owner).post(TRIGGER, body, format="json").status_code == 400


@pytest.mark.parametrize("action", ["pause", "deprecate", "archive"])
def test_a_paused_deprecated_or_archived_agent_does_not_run(
    runner: Any, owner: Any, api_for: Any, action: str
) -> None:
    agent_services.agent_transition(actor=Actor(user=owner), agent=runner, action=action)

    response = api_for(owner).post(
        TRIGGER, {"agent": runner.name, "input": {"email": "a@b.co"}}, format="json"
    )

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "agent_not_runnable"
    assert error["details"]["status"] == runner.__class__.objects.get(pk=runner.pk).status


def test_an_agent_without_production_version_does_not_run(
    agent: Any, owner: Any, api_for: Any
) -> None:
    response = api_for(owner).post(TRIGGER, {"agent": agent.name}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "agent_not_runnable"


def test_staging_runs_are_marked_and_need_change_rights(
    runner: Any, owner: Any, viewer: Any, api_for: Any
) -> None:
    agent_services.agent_version_create(
        actor=Actor(user=owner), agent=runner, version="1.1.0", clone_from="1.0.0"
    )
    agent_services.agent_version_promote(actor=Actor(user=owner), agent=runner, version="1.1.0")
    body = {"agent": runner.name, "input": {"email": "a@b.co"}, "version": "1.1.0"}

    staged = api_for(owner).post(TRIGGER, body, format="json")
    retired = api_for(owner).post(TRIGGER, {**body, "version": "0.9.0"}, format="json")

    assert staged.status_code == 202
    assert staged.json()["is_staging"] is True
    assert staged.json()["agent_version"] == "1.1.0"
    assert retired.status_code == 409
    assert retired.json()["error"]["code"] == "version_not_runnable"


def test_same_idempotency_key_returns_the_first_execution(
    runner: Any, owner: Any, api_for: Any
) -> None:
    client = api_for(owner)
    body = {"agent": runner.name, "input": {"email": "a@b.co"}}

    first = client.post(TRIGGER, body, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    again = client.post(TRIGGER, body, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    other = client.post(
        TRIGGER,
        {**body, "input": {"email": "c@d.co"}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="order-42",
    )

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Execution.objects.count() == 1
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_requests_with_one_key_make_one_execution() -> None:
    owner = factories.user("alice", role="operator")
    runner = factories.runnable_agent(owner, input_schema=SCHEMA)
    key = factories.api_key(owner)
    barrier = threading.Barrier(50)
    answers: list[Any] = []
    lock = threading.Lock()

    def fire() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        try:
            barrier.wait()
            response = client.post(
                TRIGGER,
                {"agent": runner.name, "input": {"email": "a@b.co"}},
                format="json",
                HTTP_IDEMPOTENCY_KEY="burst",
            )
            with lock:
                answers.append((response.status_code, response.json().get("execution_id")))
        finally:
            connection.close()

    threads = [threading.Thread(target=fire) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(answers) == 50
    assert {status for status, _ in answers} == {202}
    assert len({execution_id for _, execution_id in answers}) == 1
    assert Execution.objects.count() == 1


# --- the webhook --------------------------------------------------------------------------------


@pytest.fixture
def secret(runner: Any, owner: Any, api_for: Any) -> str:
    response = api_for(owner).post(f"/api/v1/agents/{runner.pk}/webhook-secret")
    assert response.status_code == 200
    assert response.json()["url"].endswith(f"/api/v1/hooks/agents/{runner.pk}")
    return response.json()["secret"]


def hook(
    client: Any,
    agent_ref: Any,
    secret: str,
    body: bytes,
    *,
    at: float | None = None,
    signature: str | None = None,
) -> Any:
    timestamp = str(int(at if at is not None else time.time()))
    return client.generic(
        "POST",
        f"/api/v1/hooks/agents/{agent_ref}",
        body,
        content_type="application/json",
        HTTP_X_CONTROLPLANE_TIMESTAMP=timestamp,
        HTTP_X_CONTROLPLANE_SIGNATURE=signature or sign(secret, timestamp, body),
    )


def test_signed_webhook_triggers_a_run(runner: Any, secret: str, client: Any) -> None:
    response = hook(client, runner.name, secret, json.dumps({"email": "a@b.co"}).encode())

    assert response.status_code == 202, response.content
    execution = Execution.objects.get()
    assert execution.trigger_source == "webhook"
    assert execution.trigger_user == "system:webhook"
    assert execution.input == {"email": "a@b.co"}


@pytest.mark.parametrize(
    "case",
    ["stale", "future", "bad-signature", "no-headers", "replay", "unknown-agent", "rotated-away"],
)
def test_webhook_refusals_are_401(
    runner: Any, secret: str, client: Any, owner: Any, case: str
) -> None:
    body = json.dumps({"email": "a@b.co"}).encode()
    if case == "stale":
        response = hook(client, runner.pk, secret, body, at=time.time() - 310)
    elif case == "future":
        response = hook(client, runner.pk, secret, body, at=time.time() + 310)
    elif case == "bad-signature":
        response = hook(client, runner.pk, secret, body, signature="sha256=" + "0" * 64)
    elif case == "no-headers":
        response = client.post(
            f"/api/v1/hooks/agents/{runner.pk}", body, content_type="application/json"
        )
    elif case == "replay":
        timestamp = str(int(time.time()))
        signature = sign(secret, timestamp, body)
        assert (
            hook(
                client, runner.pk, secret, body, signature=signature, at=int(timestamp)
            ).status_code
            == 202
        )
        response = hook(client, runner.pk, secret, body, signature=signature, at=int(timestamp))
    elif case == "unknown-agent":
        response = hook(client, "no-such-agent", secret, body)
    else:
        agent_webhook_secret_rotate(actor=Actor(user=owner), agent=runner)
        response = hook(client, runner.pk, secret, body)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert Execution.objects.count() == (1 if case == "replay" else 0)


def test_webhook_body_is_validated(runner: Any, secret: str, client: Any) -> None:
    bad_json = hook(client, runner.pk, secret, b"{not json")
    bad_input = hook(client, runner.pk, secret, json.dumps({"count": 1}).encode())

    assert bad_json.status_code == 400
    assert bad_input.status_code == 400
    assert bad_input.json()["error"]["code"] == "invalid_input"


def test_rotating_needs_change_rights(
    runner: Any, viewer: Any, outsider: Any, api_for: Any
) -> None:
    assert api_for(viewer).post(f"/api/v1/agents/{runner.pk}/webhook-secret").status_code == 403
    assert api_for(outsider).post(f"/api/v1/agents/{runner.pk}/webhook-secret").status_code == 404
    event_actions = AuditEvent.objects.values_list("action", flat=True)
    assert "agent.webhook_secret_rotated" not in event_actions


def test_the_service_itself_refuses_nul_and_overdeep_input(runner: Any, owner: Any) -> None:
    from controlplane.errors import Invalid
    from executions.trigger import TriggerRequest, execution_trigger

    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    for value in ({"email": "a@b.co", "note": "nul\x00"}, {"email": "a@b.co", "deep": deep}):
        with pytest.raises(Invalid):
            execution_trigger(
                TriggerRequest(actor=Actor(user=owner), agent=runner, input=value, source="api")
            )
    assert not Execution.objects.exists()
