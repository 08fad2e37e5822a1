"""Text a database cannot store (a lone surrogate written as ``"\\udfff"``, NUL) is refused
at the edge with a 400, the same on every entry; nothing is half-written; a run that breaks
on something unforeseen ends ``failed`` with the reason; reading a stored row never 500s."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.db import connection

from agents.models import AgentVersion
from agents.webhooks import agent_webhook_secret_rotate, sign
from controlplane.access import Actor
from controlplane.serializers import json_problem, storable_text
from executions.models import Execution
from tests import factories
from tests.api import assert_error, field_errors
from tests.executions.test_runtime import run, start

pytestmark = pytest.mark.django_db

# Raw bodies: json.dumps would escape nothing of these, the JSON text itself carries them.
SURROGATE = '"a\\udfffb"'
NUL = '"a\\u0000b"'


@pytest.fixture
def runner(owner: Any, other: Any) -> Any:
    return factories.runnable_agent(
        owner, team="team-a", trigger={"type": "event", "events": ["e"]}
    )


@pytest.mark.parametrize("text", [SURROGATE, NUL])
def test_the_trigger_api_refuses_the_text_with_400_and_stores_nothing(
    text: str, runner: Any, owner: Any, api_for: Any
) -> None:
    body = f'{{"agent": "runner", "input": {{"k": {text}}}}}'

    response = api_for(owner).generic(
        "POST", "/api/v1/executions/trigger", body, content_type="application/json"
    )

    error = assert_error(response, 400, "validation_error")
    assert "NUL" in error["message"] or "surrogate" in error["message"]
    assert field_errors(response) == {"input": "nul" if text == NUL else "not_text"}
    assert not Execution.objects.exists()


@pytest.mark.parametrize("text", [SURROGATE, NUL])
def test_the_events_api_refuses_it_too(text: str, runner: Any, owner: Any, api_for: Any) -> None:
    body = f'{{"name": "e", "payload": {{"k": {text}}}}}'

    response = api_for(owner).generic(
        "POST", "/api/v1/events", body, content_type="application/json"
    )

    assert_error(response, 400, "validation_error")
    assert field_errors(response) == {"payload": "nul" if text == NUL else "not_text"}
    assert not Execution.objects.exists()


@pytest.mark.parametrize(("text", "code"), [(SURROGATE, "not_text"), (NUL, "nul")])
def test_a_signed_webhook_refuses_it_naming_the_input(
    text: str, code: str, runner: Any, owner: Any, client: Any
) -> None:
    secret = agent_webhook_secret_rotate(actor=Actor(user=owner), agent=runner)
    body = (f'{{"k": {text}}}').encode()
    timestamp = str(int(time.time()))

    response = client.generic(
        "POST",
        f"/api/v1/hooks/agents/{runner.pk}",
        body,
        content_type="application/json",
        HTTP_X_CONTROLPLANE_TIMESTAMP=timestamp,
        HTTP_X_CONTROLPLANE_SIGNATURE=sign(secret, timestamp, body),
    )

    assert_error(response, 400, "validation_error")
    [problem] = response.json()["error"]["details"]["validationErrors"]
    assert (problem["field"], problem["code"]) == ("input", code)
    assert not Execution.objects.exists()


def test_an_agent_definition_with_it_is_refused_and_the_agent_is_unchanged(
    runner: Any, admin_user: Any, api_for: Any
) -> None:
    body = f'{{"description": {SURROGATE}}}'
    before = runner.description

    response = api_for(admin_user).generic(
        "PATCH", f"/api/v1/agents/{runner.pk}", body, content_type="application/json"
    )

    assert_error(response, 400, "validation_error")
    assert field_errors(response) == {"description": "not_text"}
    runner.refresh_from_db()
    assert runner.description == before


def test_the_checks_themselves() -> None:
    assert json_problem({"k": ["ok", "a\udfffb"]}) == "not_text"
    assert json_problem({"a\x00": 1}) == "nul"
    assert json_problem({"k": "naïve ✓ 𝄞"}) is None
    assert storable_text("a\udfffb\x00") == "a\ufffdb\\x00"
    assert storable_text("naïve") == "naïve"


@pytest.mark.skipif(
    "connection.vendor == 'postgresql'",
    reason="PostgreSQL refuses a lone surrogate in JSON at the door: no such row can exist",
)
def test_a_run_that_breaks_on_unstorable_text_ends_failed_and_its_reads_answer(
    owner: Any, api_for: Any
) -> None:
    """A row stored before the edge checked (SQLite keeps the escaped surrogate in JSON):
    the worker cannot write the answer's summary, and the run ends ``failed`` with why."""
    agent = factories.runnable_agent(owner, team="team-a", llm={"simulation": {"text": "fine"}})
    version = agent.versions.get(stage="production")
    config = json.loads(json.dumps(version.config))
    config["llm"]["simulation"]["text"] = "bad \udfff answer"
    AgentVersion.objects.filter(pk=version.pk).update(config=config)
    assert connection.vendor == "sqlite"

    execution = run(start(agent, owner))

    assert execution.status == "failed"
    assert execution.error_type == "internal_error"
    assert "UnicodeEncodeError" in execution.error_message
    client = api_for(owner)
    for path in ("", "/logs", "/report"):
        method = client.post if path == "/report" else client.get
        response = method(f"/api/v1/executions/{execution.pk}{path}")
        assert response.status_code < 500, (path, response.content)
    detail = client.get(f"/api/v1/executions/{execution.pk}")
    assert detail.json()["status"] == "failed"


@pytest.mark.parametrize(
    ("path", "headers", "where"),
    [
        ("/api/v1/executions?status=%00", {}, "the query parameter 'status'"),
        ("/api/v1/policies?agent=a%00b", {}, "the query parameter 'agent'"),
        ("/api/v1/agents/a%00b", {}, "the path"),
        ("/api/v1/executions/%00/logs", {}, "the path"),
        ("/api/v1/agents", {"HTTP_X_TRACE": "a\x00b"}, "the header X-Trace"),
    ],
)
def test_a_nul_in_the_path_query_or_a_header_is_400_at_the_edge(
    path: str, headers: dict[str, str], where: str, runner: Any, owner: Any, api_for: Any
) -> None:
    response = api_for(owner).get(path, **headers)

    error = assert_error(response, 400, "malformed_request")
    assert where in error["message"]


def test_a_nul_in_a_console_query_is_a_plain_400(owner: Any, client: Any) -> None:
    client.force_login(owner)

    response = client.get("/agents/?q=%00")

    assert response.status_code == 400
    assert b"NUL character" in response.content


def test_a_nul_in_an_idempotency_key_stores_no_run(runner: Any, owner: Any, api_for: Any) -> None:
    response = api_for(owner).post(
        "/api/v1/executions/trigger",
        {"agent": "runner", "input": {}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="key\x00",
    )

    assert_error(response, 400, "malformed_request")
    assert not Execution.objects.exists()


def test_a_body_that_is_not_an_object_is_a_malformed_request(owner: Any, api_for: Any) -> None:
    response = api_for(owner).generic(
        "POST", "/api/v1/executions/trigger", '["a\\udfffb"]', content_type="application/json"
    )

    assert_error(response, 400, "malformed_request")
