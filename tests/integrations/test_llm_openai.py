"""The OpenAI-compatible provider through the real ``openai`` SDK, against a local server on
loopback that answers like the chat completions API (its response and error shapes)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from integrations.llm.base import LLMRequest, ProviderError, ToolCall, ToolDefinition
from integrations.llm.openai_provider import OpenAIProvider
from tests.integrations.test_llm_anthropic import sent_body

KEY = "sk-proj-test-0123456789"

LOOKUP = ToolDefinition(
    name="http_request",
    description="GET a URL on an allowed domain.",
    input_schema={"type": "object", "properties": {"url": {"type": "string"}}},
)


def completion(
    message: dict[str, Any], *, finish_reason: str, prompt: int = 19, answer: int = 10
) -> dict[str, Any]:
    """A chat completion body, as the API sends it."""
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "refusal": None, "annotations": [], **message},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": answer,
            "total_tokens": prompt + answer,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
    }


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def api_error(text: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": text, "type": kind, "param": None, "code": code}}


def request_for(api: HTTPServer, **changes: Any) -> LLMRequest:
    fields: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "system": "You look things up.",
        "messages": [{"role": "user", "content": "What is on example.com?"}],
        "max_tokens": 300,
        "temperature": 0.4,
        "timeout": 5.0,
        "config": {"provider": "openai", "base_url": api.url_for("/v1")},
    }
    return LLMRequest(**{**fields, **changes})


def test_text_turn_returns_the_text_the_tokens_and_the_model(api: HTTPServer) -> None:
    api.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        completion({"content": "It is an example page."}, finish_reason="stop", prompt=42, answer=6)
    )

    result = OpenAIProvider(api_key=KEY).complete(request_for(api))

    assert result.text == "It is an example page."
    assert result.tool_calls == []
    assert result.stop_reason == "end_turn"
    assert (result.prompt_tokens, result.completion_tokens) == (42, 6)
    assert result.model == "gpt-4o-mini-2024-07-18"


def test_request_carries_system_model_limits_and_the_key(api: HTTPServer) -> None:
    api.expect_request("/v1/chat/completions").respond_with_json(
        completion({"content": "ok"}, finish_reason="stop")
    )

    OpenAIProvider(api_key=KEY).complete(request_for(api))

    body = sent_body(api)
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [
        {"role": "system", "content": "You look things up."},
        {"role": "user", "content": "What is on example.com?"},
    ]
    assert body["max_tokens"] == 300
    assert body["temperature"] == 0.4
    assert "tools" not in body  # the API refuses an empty tools list
    assert api.log[0][0].headers["Authorization"] == f"Bearer {KEY}"


def test_reasoning_models_get_max_completion_tokens_and_no_temperature(api: HTTPServer) -> None:
    api.expect_request("/v1/chat/completions").respond_with_json(
        completion({"content": "ok"}, finish_reason="stop")
    )

    OpenAIProvider(api_key=KEY).complete(request_for(api, model="gpt-5-mini"))

    body = sent_body(api)
    assert body["max_completion_tokens"] == 300
    assert "max_tokens" not in body
    assert "temperature" not in body


def test_tool_call_turn_returns_parsed_arguments_and_sends_the_tools(api: HTTPServer) -> None:
    api.expect_request("/v1/chat/completions").respond_with_json(
        completion(
            {
                "content": None,
                "tool_calls": [
                    tool_call("call_abc123", "http_request", '{"url": "https://example.com"}')
                ],
            },
            finish_reason="tool_calls",
        )
    )

    result = OpenAIProvider(api_key=KEY).complete(request_for(api, tools=[LOOKUP]))

    assert result.stop_reason == "tool_use"
    assert result.text == ""
    assert result.tool_calls == [
        ToolCall(id="call_abc123", name="http_request", arguments={"url": "https://example.com"})
    ]
    assert sent_body(api)["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "http_request",
                "description": "GET a URL on an allowed domain.",
                "parameters": LOOKUP.input_schema,
            },
        }
    ]


def test_second_turn_sends_tool_calls_as_json_strings_and_tool_messages(
    api: HTTPServer,
) -> None:
    api.expect_request("/v1/chat/completions").respond_with_json(
        completion({"content": "example.com is a placeholder."}, finish_reason="stop")
    )
    conversation = [
        {"role": "user", "content": "Check two pages."},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_1", "name": "http_request", "arguments": {"url": "https://a.com"}},
                {"id": "call_2", "name": "http_request", "arguments": {"url": "https://b.com"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "name": "http_request", "content": "<html>"},
        {
            "role": "tool",
            "tool_call_id": "call_2",
            "name": "http_request",
            "content": "domain not allowed",
            "is_error": True,
        },
    ]

    result = OpenAIProvider(api_key=KEY).complete(
        request_for(api, messages=conversation, tools=[LOOKUP])
    )

    assert result.text == "example.com is a placeholder."
    messages = sent_body(api)["messages"]
    assert messages[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "http_request", "arguments": '{"url": "https://a.com"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "http_request", "arguments": '{"url": "https://b.com"}'},
            },
        ],
    }
    assert messages[3:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "<html>"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Error: domain not allowed"},
    ]
    assert json.loads(messages[2]["tool_calls"][0]["function"]["arguments"]) == {
        "url": "https://a.com"
    }


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [("length", "max_tokens"), ("content_filter", "content_filter")],
)
def test_finish_reasons_map_to_neutral_stop_reasons(
    api: HTTPServer, finish_reason: str, stop_reason: str
) -> None:
    api.expect_request("/v1/chat/completions").respond_with_json(
        completion({"content": "cut"}, finish_reason=finish_reason)
    )

    result = OpenAIProvider(api_key=KEY).complete(request_for(api))

    assert result.stop_reason == stop_reason


def test_a_server_that_says_stop_while_calling_tools_still_asks_for_them(
    api: HTTPServer,
) -> None:
    api.expect_request("/v1/chat/completions").respond_with_json(
        completion(
            {"content": "", "tool_calls": [tool_call("call_9", "http_request", "")]},
            finish_reason="stop",
        )
    )

    result = OpenAIProvider(api_key=KEY).complete(request_for(api, tools=[LOOKUP]))

    assert result.stop_reason == "tool_use"
    assert result.tool_calls == [ToolCall(id="call_9", name="http_request", arguments={})]


@pytest.mark.parametrize("arguments", ['{"url": "https://exa', "[1, 2]"])
def test_malformed_tool_arguments_are_a_bad_response(api: HTTPServer, arguments: str) -> None:
    api.expect_request("/v1/chat/completions").respond_with_json(
        completion(
            {"content": None, "tool_calls": [tool_call("call_x", "http_request", arguments)]},
            finish_reason="tool_calls",
        )
    )

    with pytest.raises(ProviderError) as caught:
        OpenAIProvider(api_key=KEY).complete(request_for(api, tools=[LOOKUP]))

    assert (caught.value.error_type, caught.value.retryable) == ("bad_response", False)
    assert "http_request" in caught.value.message


def test_rate_limit_is_retryable_and_passes_on_retry_after(api: HTTPServer) -> None:
    api.expect_request("/v1/chat/completions").respond_with_json(
        api_error(
            "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3.",
            "requests",
            "rate_limit_exceeded",
        ),
        status=429,
        headers={"retry-after": "20"},
    )

    with pytest.raises(ProviderError) as caught:
        OpenAIProvider(api_key=KEY).complete(request_for(api))

    error = caught.value
    assert (error.error_type, error.retryable, error.status) == ("rate_limited", True, 429)
    assert error.retry_after == 20.0
    assert "Rate limit reached" in error.message
    assert len(api.log) == 1


@pytest.mark.parametrize(
    ("status", "error_type", "retryable"),
    [
        (500, "server_error", True),
        (502, "server_error", True),
        (529, "overloaded", True),
        (401, "auth", False),
        (403, "auth", False),
        (400, "bad_request", False),
        (404, "bad_request", False),
        (422, "bad_request", False),
    ],
)
def test_http_errors_say_whether_retrying_can_help(
    api: HTTPServer, status: int, error_type: str, retryable: bool
) -> None:
    api.expect_request("/v1/chat/completions").respond_with_json(
        api_error(f"refused with {status}", "invalid_request_error", None), status=status
    )

    with pytest.raises(ProviderError) as caught:
        OpenAIProvider(api_key=KEY).complete(request_for(api))

    assert (caught.value.error_type, caught.value.retryable) == (error_type, retryable)
    assert caught.value.status == status
    assert f"refused with {status}" in caught.value.message
    assert len(api.log) == 1


def test_a_server_slower_than_the_timeout_is_a_retryable_timeout(api: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.5)
        return Response("{}", content_type="application/json")

    api.expect_request("/v1/chat/completions").respond_with_handler(slow)

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        OpenAIProvider(api_key=KEY).complete(request_for(api, timeout=0.3))

    assert time.monotonic() - started < 1.2
    assert (caught.value.error_type, caught.value.retryable) == ("timeout", True)


def test_a_local_server_is_reached_through_the_providers_base_url(api: HTTPServer) -> None:
    """vLLM, Ollama and llama.cpp: the endpoint comes from the credential or the environment
    when the version names none."""
    api.expect_request("/v1/chat/completions").respond_with_json(
        completion({"content": "local answer"}, finish_reason="stop")
    )
    provider = OpenAIProvider(api_key="ollama", base_url=api.url_for("/v1"))

    result = provider.complete(
        LLMRequest(
            model="llama3.1:8b",
            system="",
            messages=[{"role": "user", "content": "hi"}],
            config={"provider": "openai", "base_url": None},
        )
    )

    assert result.text == "local answer"
    assert sent_body(api)["messages"] == [{"role": "user", "content": "hi"}]
