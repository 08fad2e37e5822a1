"""The Anthropic provider through the real ``anthropic`` SDK, against a local server on
loopback that answers like the Messages API (its documented response and error shapes)."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from integrations.llm.anthropic_provider import AnthropicProvider
from integrations.llm.base import LLMRequest, ProviderError, ToolCall, ToolDefinition

KEY = "sk-ant-test-0123456789"

SEND_EMAIL = ToolDefinition(
    name="send_email",
    description="Send an e-mail.",
    input_schema={
        "type": "object",
        "properties": {"to": {"type": "string"}, "subject": {"type": "string"}},
        "required": ["to"],
    },
)


def message(content: list[dict[str, Any]], *, stop_reason: str, **usage: int) -> dict[str, Any]:
    """A Messages API response body, as the API sends it."""
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-4-5-20251101",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.get("input_tokens", 25),
            "output_tokens": usage.get("output_tokens", 12),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    }


def api_error(kind: str, text: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": text}, "request_id": "req_011"}


def request_for(api: HTTPServer, **changes: Any) -> LLMRequest:
    fields: dict[str, Any] = {
        "model": "claude-opus-4-5",
        "system": "You triage e-mail.",
        "messages": [{"role": "user", "content": "Summarize my inbox."}],
        "max_tokens": 512,
        "timeout": 5.0,
        "config": {"provider": "anthropic", "base_url": api.url_for("")},
    }
    return LLMRequest(**{**fields, **changes})


def sent_body(api: HTTPServer) -> dict[str, Any]:
    """The JSON body of the one request the SDK sent (it must not retry on its own)."""
    assert len(api.log) == 1, "exactly one request: the SDK must not retry on its own"
    return api.log[0][0].get_json()


def test_text_turn_returns_the_text_the_tokens_and_the_model(api: HTTPServer) -> None:
    api.expect_request("/v1/messages", method="POST").respond_with_json(
        message(
            [{"type": "text", "text": "Three new "}, {"type": "text", "text": "messages."}],
            stop_reason="end_turn",
            input_tokens=31,
            output_tokens=7,
        )
    )

    result = AnthropicProvider(api_key=KEY).complete(request_for(api))

    assert result.text == "Three new messages."
    assert result.tool_calls == []
    assert result.stop_reason == "end_turn"
    assert (result.prompt_tokens, result.completion_tokens) == (31, 7)
    assert result.model == "claude-opus-4-5-20251101"


def test_request_carries_model_system_max_tokens_and_the_key(api: HTTPServer) -> None:
    api.expect_request("/v1/messages", method="POST").respond_with_json(
        message([{"type": "text", "text": "ok"}], stop_reason="end_turn")
    )

    AnthropicProvider(api_key=KEY).complete(request_for(api, temperature=0.7))

    body = sent_body(api)
    assert body["model"] == "claude-opus-4-5"
    assert body["system"] == "You triage e-mail."
    assert body["max_tokens"] == 512
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Summarize my inbox."}]}
    ]
    # No tools offered: no tools key; sampling parameters are refused by the API version.
    assert "tools" not in body
    assert "temperature" not in body
    headers = api.log[0][0].headers
    assert KEY in (headers.get("Authorization", "") + headers.get("X-Api-Key", ""))
    assert headers["anthropic-version"]


def test_tool_use_turn_returns_tool_calls_and_sends_the_tools(api: HTTPServer) -> None:
    api.expect_request("/v1/messages", method="POST").respond_with_json(
        message(
            [
                {"type": "text", "text": "I will e-mail the summary."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "name": "send_email",
                    "input": {"to": "ops@company.com", "subject": "Inbox"},
                },
            ],
            stop_reason="tool_use",
        )
    )

    result = AnthropicProvider(api_key=KEY).complete(request_for(api, tools=[SEND_EMAIL]))

    assert result.stop_reason == "tool_use"
    assert result.text == "I will e-mail the summary."
    assert result.tool_calls == [
        ToolCall(
            id="toolu_01A09q90qw90lq917835lq9",
            name="send_email",
            arguments={"to": "ops@company.com", "subject": "Inbox"},
        )
    ]
    assert sent_body(api)["tools"] == [
        {
            "name": "send_email",
            "description": "Send an e-mail.",
            "input_schema": SEND_EMAIL.input_schema,
        }
    ]


def test_second_turn_sends_all_tool_results_in_one_user_message(api: HTTPServer) -> None:
    api.expect_request("/v1/messages", method="POST").respond_with_json(
        message([{"type": "text", "text": "Done."}], stop_reason="end_turn")
    )
    conversation = [
        {"role": "user", "content": "Tell ops and sales."},
        {
            "role": "assistant",
            "content": "Sending two e-mails.",
            "tool_calls": [
                {"id": "toolu_1", "name": "send_email", "arguments": {"to": "ops@company.com"}},
                {"id": "toolu_2", "name": "send_email", "arguments": {"to": "sales@company.com"}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "name": "send_email", "content": "sent"},
        {
            "role": "tool",
            "tool_call_id": "toolu_2",
            "name": "send_email",
            "content": "recipient not allowed",
            "is_error": True,
        },
    ]

    result = AnthropicProvider(api_key=KEY).complete(
        request_for(api, messages=conversation, tools=[SEND_EMAIL])
    )

    assert result.text == "Done."
    assert sent_body(api)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Tell ops and sales."}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Sending two e-mails."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "send_email",
                    "input": {"to": "ops@company.com"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "send_email",
                    "input": {"to": "sales@company.com"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": "sent",
                    "is_error": False,
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": "recipient not allowed",
                    "is_error": True,
                },
            ],
        },
    ]


def test_rate_limit_is_retryable_and_passes_on_retry_after(api: HTTPServer) -> None:
    api.expect_request("/v1/messages").respond_with_json(
        api_error("rate_limit_error", "Number of requests has exceeded your rate limit."),
        status=429,
        headers={"retry-after": "17"},
    )

    with pytest.raises(ProviderError) as caught:
        AnthropicProvider(api_key=KEY).complete(request_for(api))

    error = caught.value
    assert (error.error_type, error.retryable, error.status) == ("rate_limited", True, 429)
    assert error.retry_after == 17.0
    assert "exceeded your rate limit" in error.message
    assert len(api.log) == 1  # not retried by the SDK: the loop does it


def test_overloaded_529_is_retryable(api: HTTPServer) -> None:
    api.expect_request("/v1/messages").respond_with_json(
        api_error("overloaded_error", "Overloaded"), status=529
    )

    with pytest.raises(ProviderError) as caught:
        AnthropicProvider(api_key=KEY).complete(request_for(api))

    assert (caught.value.error_type, caught.value.retryable, caught.value.status) == (
        "overloaded",
        True,
        529,
    )
    assert caught.value.retry_after is None
    assert len(api.log) == 1


@pytest.mark.parametrize(
    ("status", "kind", "error_type", "retryable"),
    [
        (500, "api_error", "server_error", True),
        (503, "api_error", "server_error", True),
        (401, "authentication_error", "auth", False),
        (403, "permission_error", "auth", False),
        (400, "invalid_request_error", "bad_request", False),
        (404, "not_found_error", "bad_request", False),
        (422, "invalid_request_error", "bad_request", False),
    ],
)
def test_http_errors_say_whether_retrying_can_help(
    api: HTTPServer, status: int, kind: str, error_type: str, retryable: bool
) -> None:
    api.expect_request("/v1/messages").respond_with_json(
        api_error(kind, f"refused with {status}"), status=status
    )

    with pytest.raises(ProviderError) as caught:
        AnthropicProvider(api_key=KEY).complete(request_for(api))

    assert (caught.value.error_type, caught.value.retryable) == (error_type, retryable)
    assert caught.value.status == status
    assert f"refused with {status}" in caught.value.message
    assert KEY not in caught.value.message
    assert len(api.log) == 1


def test_a_server_slower_than_the_timeout_is_a_retryable_timeout(api: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.5)
        return Response("{}", content_type="application/json")

    api.expect_request("/v1/messages").respond_with_handler(slow)

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        AnthropicProvider(api_key=KEY).complete(request_for(api, timeout=0.3))

    assert time.monotonic() - started < 1.2  # gave up at the timeout, not when the server answered
    assert (caught.value.error_type, caught.value.retryable) == ("timeout", True)


def test_an_unreachable_server_is_a_retryable_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on that port any more: the connection is refused.

    with pytest.raises(ProviderError) as caught:
        AnthropicProvider(api_key=KEY, base_url=f"http://127.0.0.1:{port}").complete(
            LLMRequest(model="claude-haiku-4-5", system="", messages=[], timeout=2.0)
        )

    assert (caught.value.error_type, caught.value.retryable) == ("connection", True)


def test_the_versions_base_url_wins_over_the_providers_default(api: HTTPServer) -> None:
    api.expect_request("/v1/messages").respond_with_json(
        message([{"type": "text", "text": "from the version's endpoint"}], stop_reason="end_turn")
    )
    provider = AnthropicProvider(api_key=KEY, base_url="http://127.0.0.1:9/unused")

    result = provider.complete(request_for(api))

    assert result.text == "from the version's endpoint"
