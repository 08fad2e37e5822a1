"""webhook_post against a local HTTP server: the payload, the idempotency key, and a
signature the receiver can verify with the shared secret."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from integrations.tools.base import ToolContext, ToolError, ToolRefused
from integrations.tools.registry import get_tool
from integrations.vault import Secret
from integrations.webhook.tool import WebhookPostTool

TOOL = WebhookPostTool()
SECRET = "whsec-shared-0123"


@pytest.fixture(autouse=True)
def loopback_allowed(settings: Any) -> None:
    settings.TOOL_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]


def context(server: HTTPServer, credential: Secret | None = None, **config: Any) -> ToolContext:
    return ToolContext(
        execution_id="exec-5",
        agent_name="hooker",
        config={"url": f"http://127.0.0.1:{server.port}/hooks/in", **config},
        idempotency_key="exec-5:call-2",
        credential=credential,
        timeout=5,
    )


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (written from the documented scheme, not from our code)."""
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(signature, "sha256=" + expected.hexdigest())


def test_posts_a_signed_payload(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hooks/in", method="POST").respond_with_json({"received": True})
    payload = {"event": "lead.created", "lead": {"id": 9, "name": "Zoë"}}

    result = TOOL.run(
        context(httpserver, Secret("webhook", "webhook", {"secret": SECRET}, {})),
        {"payload": payload},
    )

    request, _ = httpserver.log[0]
    body = request.get_data()
    timestamp = request.headers["X-ControlPlane-Timestamp"]
    assert request.get_json() == payload
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == "exec-5:call-2"
    assert request.headers["X-ControlPlane-Execution"] == "exec-5"
    assert abs(int(timestamp) - time.time()) < 60
    assert verify(SECRET, timestamp, body, request.headers["X-ControlPlane-Signature"])
    assert not verify(
        "another-secret", timestamp, body, request.headers["X-ControlPlane-Signature"]
    )
    assert result.content == {
        "status": 200,
        "content_type": "application/json",
        "body": {"received": True},
    }
    assert result.detail == {"status": 200, "signed": True}
    assert SECRET not in str(result)


def test_unsigned_without_a_secret(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hooks/in").respond_with_data("", status=204)

    result = TOOL.run(context(httpserver), {"payload": {"a": 1}})

    request, _ = httpserver.log[0]
    assert "X-ControlPlane-Signature" not in request.headers
    assert "X-ControlPlane-Timestamp" not in request.headers
    assert result.content["status"] == 204
    assert result.detail["signed"] is False


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({}, "'payload' is a required property"),
        ({"payload": "text"}, "is not of type 'object'"),
        ({"payload": {}, "url": "http://elsewhere/"}, "Additional properties"),
    ],
)
def test_bad_arguments_are_refused(arguments: dict[str, Any], problem: str) -> None:
    with pytest.raises(ToolRefused) as refused:
        TOOL.authorize(arguments, {"url": "https://hooks.example.com/x"})

    assert problem in refused.value.reason


def test_the_model_cannot_choose_the_url_and_a_missing_one_is_refused() -> None:
    with pytest.raises(ToolRefused, match="no webhook URL"):
        TOOL.authorize({"payload": {}}, {})


def test_server_errors_are_retryable(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hooks/in").respond_with_data("down", status=502)

    with pytest.raises(ToolError) as caught:
        TOOL.run(context(httpserver), {"payload": {}})

    assert (caught.value.retryable, caught.value.status) == (True, 502)


def test_a_private_webhook_url_needs_the_operator_allowlist(
    httpserver: HTTPServer, settings: Any
) -> None:
    settings.TOOL_ALLOWED_PRIVATE_NETWORKS = []

    with pytest.raises(ToolRefused, match="loopback"):
        TOOL.run(context(httpserver), {"payload": {}})

    assert httpserver.log == []


def test_registered_and_safe_to_retry_with_the_key() -> None:
    tool = get_tool("webhook_post")

    assert isinstance(tool, WebhookPostTool)
    assert tool.idempotent_retry is True
    assert set(tool.input_schema["properties"]) == {"payload"}
