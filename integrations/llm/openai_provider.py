"""OpenAI-compatible chat completions with tool calls, through the official ``openai`` SDK.

The same code talks to OpenAI and to local servers that speak its API (vLLM, Ollama,
llama.cpp) through the version's or the credential's ``base_url``. The SDK does not retry
(``max_retries=0``): the agent loop does, alike for every provider.
"""

from __future__ import annotations

import json
import re
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from integrations.llm import errors
from integrations.llm.base import (
    LLMProvider,
    LLMRequest,
    LLMResult,
    ProviderError,
    ToolCall,
    ToolDefinition,
)
from integrations.llm.clients import sdk_client

VENDOR = "OpenAI-compatible API"

FINISH_REASONS = {"tool_calls": "tool_use", "stop": "end_turn", "length": "max_tokens"}

# OpenAI's reasoning models refuse any temperature but the default and want
# ``max_completion_tokens`` (they answer 400 to ``max_tokens``).
REASONING_MODEL_RE = re.compile(r"^(?:gpt-5|o\d)(?:$|[-.])")


def openai_messages(system: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The neutral conversation as chat messages: the system prompt first, assistant tool
    calls with their arguments as a JSON string, each tool result as a ``tool`` message.
    The API has no error flag on a tool result, so a failed call says so in its text."""
    converted: list[dict[str, Any]] = []
    if system:
        converted.append({"role": "system", "content": system})
    for message in messages:
        role = message.get("role")
        if role == "user":
            converted.append({"role": "user", "content": str(message.get("content") or "")})
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            text = str(message.get("content") or "")
            # Beside tool calls, "no text" is null content in the API's schema.
            item: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
            if calls:
                item["tool_calls"] = [
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {
                            "name": call["name"],
                            "arguments": json.dumps(call.get("arguments") or {}),
                        },
                    }
                    for call in calls
                ]
            converted.append(item)
        elif role == "tool":
            content = str(message.get("content") or "")
            if message.get("is_error"):
                content = f"Error: {content}"
            converted.append(
                {"role": "tool", "tool_call_id": message["tool_call_id"], "content": content}
            )
        else:
            raise ProviderError(
                f"A conversation message has an unknown role {role!r}.",
                retryable=False,
                error_type="bad_request",
            )
    return converted


def openai_tools(tools: list[ToolDefinition]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.input_schema,
            },
        }
        for tool in tools
    ]


def tool_arguments(raw: str | None, *, tool: str) -> dict[str, Any]:
    """A tool call's arguments: a JSON object as a string (empty means no arguments, as
    some local servers send for a tool without parameters)."""
    if not raw or not raw.strip():
        return {}
    try:
        arguments = json.loads(raw)
    except ValueError:
        raise errors.bad_response(
            VENDOR, f"the arguments of a call to {tool!r} are not valid JSON: {raw[:200]!r}"
        ) from None
    if not isinstance(arguments, dict):
        raise errors.bad_response(
            VENDOR, f"the arguments of a call to {tool!r} are not a JSON object: {raw[:200]!r}"
        )
    return arguments


def result_from_completion(completion: ChatCompletion, *, requested_model: str) -> LLMResult:
    if not completion.choices:
        raise errors.bad_response(VENDOR, "the answer has no choices.")
    choice = completion.choices[0]
    message = choice.message
    calls = [
        ToolCall(
            id=call.id,
            name=call.function.name,
            arguments=tool_arguments(call.function.arguments, tool=call.function.name),
        )
        for call in message.tool_calls or []
        if call.type == "function"
    ]
    stop_reason = FINISH_REASONS.get(choice.finish_reason, choice.finish_reason or "end_turn")
    if calls and stop_reason == "end_turn":
        # Some local servers say "stop" while calling tools; the calls are what counts.
        stop_reason = "tool_use"
    usage = completion.usage
    return LLMResult(
        text=message.content or message.refusal or "",
        tool_calls=calls,
        stop_reason=stop_reason,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        model=completion.model or requested_model,
    )


class OpenAIProvider(LLMProvider):
    """OpenAI, or any server speaking its chat completions API. ``base_url`` is the default
    endpoint (from the credential's config or ``OPENAI_BASE_URL``); the version's
    ``llm.base_url`` wins over it."""

    name = "openai"

    def __init__(self, *, api_key: str, base_url: str | None = None) -> None:
        self.api_key = api_key
        self.base_url = base_url

    def __repr__(self) -> str:
        return f"OpenAIProvider(base_url={self.base_url!r}, api_key=[redacted])"

    def _base_url(self, request: LLMRequest) -> str | None:
        return request.config.get("base_url") or self.base_url

    def client(self, request: LLMRequest) -> openai.OpenAI:
        base_url = self._base_url(request)
        return sdk_client(
            vendor=self.name,
            base_url=base_url,
            api_key=self.api_key,
            make=lambda: openai.OpenAI(
                api_key=self.api_key,
                # The SDK would read OPENAI_BASE_URL on its own for None; the registry has
                # already chosen, so the default is spelled out.
                base_url=base_url or "https://api.openai.com/v1",
                max_retries=0,
                timeout=request.timeout,
            ),
        )

    def complete(self, request: LLMRequest) -> LLMResult:
        params: dict[str, Any] = {
            "model": request.model,
            "messages": openai_messages(request.system, request.messages),
        }
        if REASONING_MODEL_RE.match(request.model):
            params["max_completion_tokens"] = request.max_tokens
        else:
            # What local servers understand, and what OpenAI's other models accept.
            params["max_tokens"] = request.max_tokens
            params["temperature"] = request.temperature
        if request.tools:
            params["tools"] = openai_tools(request.tools)
        client = self.client(request)
        completion = errors.calling(
            openai,
            VENDOR,
            request.timeout,
            lambda: client.chat.completions.create(**params, timeout=request.timeout),
        )
        return result_from_completion(completion, requested_model=request.model)
