"""slack_notification against a local HTTP server standing in for Slack's Web API and an
incoming webhook: what Slack receives, what the model gets back, and every refusal."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from integrations.slack.tool import SlackNotificationTool
from integrations.tools.base import ToolContext, ToolError, ToolRefused
from integrations.tools.registry import get_tool
from integrations.vault import Secret

TOKEN = "xoxb-test-token-0123456789"
TOOL = SlackNotificationTool()


@pytest.fixture(autouse=True)
def loopback_allowed(settings: Any) -> None:
    settings.TOOL_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]


def bot(server: HTTPServer) -> Secret:
    return Secret(
        "slack", "slack", {"token": TOKEN}, {"base_url": f"http://127.0.0.1:{server.port}/api"}
    )


def context(credential: Secret | None, **config: Any) -> ToolContext:
    return ToolContext(
        execution_id="exec-1",
        agent_name="notifier",
        config={"allowed_channels": ["#alerts", "#ops"], **config},
        idempotency_key="exec-1:call-1",
        credential=credential,
        timeout=5,
    )


def test_posts_with_the_bot_token_and_returns_channel_and_ts(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/chat.postMessage", method="POST").respond_with_json(
        {"ok": True, "channel": "C024BE91L", "ts": "1503435956.000247", "message": {}}
    )

    result = TOOL.run(context(bot(httpserver)), {"channel": "#alerts", "text": "Deploy done"})

    request, _ = httpserver.log[0]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Idempotency-Key"] == "exec-1:call-1"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.get_json() == {"channel": "#alerts", "text": "Deploy done"}
    assert result.content == {"ok": True, "channel": "C024BE91L", "ts": "1503435956.000247"}
    assert (result.target, result.method) == ("#alerts", "chat.postMessage")
    assert TOKEN not in json.dumps([result.content, result.detail, result.target])


def test_uses_the_default_channel_when_the_model_gives_none(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_json(
        {"ok": True, "channel": "C1", "ts": "1.1"}
    )

    TOOL.run(context(bot(httpserver), default_channel="#ops"), {"text": "hello"})

    assert httpserver.log[0][0].get_json()["channel"] == "#ops"


@pytest.mark.parametrize("channel", ["alerts", "#ALERTS", " #ops "])
def test_allowed_channels_match_with_or_without_hash(channel: str) -> None:
    TOOL.authorize({"channel": channel, "text": "x"}, {"allowed_channels": ["#alerts", "ops"]})


def test_refuses_a_channel_outside_allowed_channels(httpserver: HTTPServer) -> None:
    arguments = {"channel": "#random", "text": "leak"}

    with pytest.raises(ToolRefused, match=r"#random is not allowed; allowed: #alerts, #ops"):
        TOOL.authorize(arguments, context(None).config)
    with pytest.raises(ToolRefused):
        TOOL.run(context(bot(httpserver)), arguments)

    assert httpserver.log == []


def test_any_channel_when_allowed_channels_is_empty() -> None:
    TOOL.authorize({"channel": "#anything", "text": "x"}, {"allowed_channels": []})


def test_refuses_when_there_is_no_channel_at_all() -> None:
    with pytest.raises(ToolRefused, match="no default channel"):
        TOOL.authorize({"text": "x"}, {"allowed_channels": []})


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"channel": "#alerts"}, "'text' is a required property"),
        ({"channel": "#alerts", "text": ""}, "text:"),
        ({"channel": "#alerts", "text": 42}, "text: 42 is not of type 'string'"),
        ({"channel": "#alerts", "text": "x", "as_user": True}, "Additional properties"),
        ("post this", "must be a JSON object"),
    ],
)
def test_bad_arguments_are_refused_with_the_reason(arguments: Any, problem: str) -> None:
    with pytest.raises(ToolRefused) as refused:
        TOOL.authorize(arguments, {"allowed_channels": []})

    assert problem in refused.value.reason


@pytest.mark.parametrize(
    ("error", "retryable"),
    [("ratelimited", True), ("internal_error", True), ("channel_not_found", False),
     ("invalid_auth", False), ("not_in_channel", False)],
)  # fmt: skip
def test_slack_error_answers_are_tool_errors(
    httpserver: HTTPServer, error: str, retryable: bool
) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_json(
        {"ok": False, "error": error}
    )

    with pytest.raises(ToolError) as caught:
        TOOL.run(context(bot(httpserver)), {"channel": "#alerts", "text": "x"})

    assert caught.value.retryable is retryable
    assert error in caught.value.message
    assert TOKEN not in caught.value.message


def test_http_429_from_slack_is_retryable(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_data(
        "", status=429, headers={"Retry-After": "3"}
    )

    with pytest.raises(ToolError) as caught:
        TOOL.run(context(bot(httpserver)), {"channel": "#alerts", "text": "x"})

    assert (caught.value.retryable, caught.value.status) == (True, 429)


def test_posts_to_an_incoming_webhook_without_echoing_its_url(httpserver: HTTPServer) -> None:
    hook = f"http://127.0.0.1:{httpserver.port}/services/T000/B000/XXXXSECRET"
    httpserver.expect_request("/services/T000/B000/XXXXSECRET", method="POST").respond_with_data(
        "ok"
    )
    secret = Secret("slack", "slack", {"webhook_url": hook}, {})

    result = TOOL.run(context(secret), {"channel": "#ops", "text": "*bold* news"})

    request, _ = httpserver.log[0]
    assert request.get_json() == {"channel": "#ops", "text": "*bold* news"}
    assert request.headers["Idempotency-Key"] == "exec-1:call-1"
    assert result.content == {"ok": True, "channel": "#ops"}
    assert result.method == "incoming_webhook"
    assert "XXXXSECRET" not in json.dumps([result.content, result.detail, result.target])


def test_incoming_webhook_errors_do_not_echo_its_url(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/services/T/B/XXXXSECRET").respond_with_data(
        "invalid_token", status=403
    )
    hook = f"http://127.0.0.1:{httpserver.port}/services/T/B/XXXXSECRET"

    with pytest.raises(ToolError) as caught:
        TOOL.run(
            context(Secret("slack", "slack", {"webhook_url": hook}, {})),
            {"channel": "#ops", "text": "x"},
        )

    assert caught.value.retryable is False
    assert "invalid_token" in caught.value.message
    assert "XXXXSECRET" not in caught.value.message


def test_refuses_without_a_credential() -> None:
    with pytest.raises(ToolRefused, match="No Slack credential"):
        TOOL.run(context(None), {"channel": "#alerts", "text": "x"})


def test_slack_base_url_goes_through_the_network_guard(
    httpserver: HTTPServer, settings: Any
) -> None:
    settings.TOOL_ALLOWED_PRIVATE_NETWORKS = []

    with pytest.raises(ToolRefused, match="loopback"):
        TOOL.run(context(bot(httpserver)), {"channel": "#alerts", "text": "x"})

    assert httpserver.log == []


def test_registered_under_its_catalog_name() -> None:
    tool = get_tool("slack_notification")

    assert isinstance(tool, SlackNotificationTool)
    assert tool.idempotent_retry is False  # Slack does not deduplicate on our key
    assert set(tool.input_schema["properties"]) == {"channel", "text"}


def test_the_webhook_url_is_never_logged(httpserver: HTTPServer, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request("/services/T/B/XXXXSECRET").respond_with_data("ok")
    hook = f"http://127.0.0.1:{httpserver.port}/services/T/B/XXXXSECRET"

    TOOL.run(
        context(Secret("slack", "slack", {"webhook_url": hook}, {})),
        {"channel": "#ops", "text": "x"},
    )

    ours = [r for r in caplog.records if r.name.startswith(("httpx2", "httpcore2", "integrations"))]
    assert ours  # the call is logged (host only), ...
    assert not [r for r in ours if "XXXXSECRET" in r.getMessage()]  # ... never its URL
