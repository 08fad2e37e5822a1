"""Anthropic's Messages API with tool use, through the official ``anthropic`` SDK.

The SDK does not retry here (``max_retries=0``): the agent loop retries every provider the
same way, within the run's deadline. ``temperature`` is not sent: the API version this SDK
speaks (2026-10-21) refuses sampling parameters with a 400, and the SDK no longer has them.
"""

from __future__ import annotations

from typing import Any

import anthropic

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

VENDOR = "Anthropic"


def anthropic_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The neutral conversation as Anthropic messages.

    Tool results answer as the user: consecutive ``tool`` messages become one user message
    of ``tool_result`` blocks (the API wants every result of one assistant turn together,
    first in the next user message), and a user text right after them joins that message
    rather than making two user turns in a row.
    """
    converted: list[dict[str, Any]] = []

    def add_user_blocks(blocks: list[dict[str, Any]]) -> None:
        previous = converted[-1] if converted else None
        if previous is not None and previous["role"] == "user":
            previous["content"].extend(blocks)
        else:
            converted.append({"role": "user", "content": blocks})

    for message in messages:
        role = message.get("role")
        if role == "user":
            add_user_blocks([{"type": "text", "text": str(message.get("content") or "")}])
        elif role == "tool":
            add_user_blocks(
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message["tool_call_id"],
                        "content": str(message.get("content") or ""),
                        "is_error": bool(message.get("is_error", False)),
                    }
                ]
            )
        elif role == "assistant":
            blocks: list[dict[str, Any]] = []
            if message.get("content"):
                blocks.append({"type": "text", "text": str(message["content"])})
            blocks.extend(
                {
                    "type": "tool_use",
                    "id": call["id"],
                    "name": call["name"],
                    "input": call.get("arguments") or {},
                }
                for call in message.get("tool_calls") or []
            )
            # An assistant turn with nothing in it is refused by the API; it carries nothing.
            if blocks:
                converted.append({"role": "assistant", "content": blocks})
        else:
            raise ProviderError(
                f"A conversation message has an unknown role {role!r}.",
                retryable=False,
                error_type="bad_request",
            )
    return converted


def anthropic_tools(tools: list[ToolDefinition]) -> list[dict[str, Any]]:
    return [
        {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}
        for tool in tools
    ]


def result_from_message(message: anthropic.types.Message, *, requested_model: str) -> LLMResult:
    """An Anthropic ``Message`` as a neutral result. Text blocks are joined without a
    separator: the API splits one text into several blocks (around citations)."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content or []:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(block.input or {})))
    usage = message.usage
    return LLMResult(
        text="".join(texts),
        tool_calls=calls,
        stop_reason=message.stop_reason or ("tool_use" if calls else "end_turn"),
        prompt_tokens=int(getattr(usage, "input_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "output_tokens", 0) or 0),
        model=message.model or requested_model,
    )


class AnthropicProvider(LLMProvider):
    """Claude models. ``base_url`` is the default endpoint (a gateway or proxy from the
    credential's config); the version's ``llm.base_url`` wins over it."""

    name = "anthropic"

    def __init__(self, *, api_key: str, base_url: str | None = None) -> None:
        self.api_key = api_key
        self.base_url = base_url

    def __repr__(self) -> str:
        return f"AnthropicProvider(base_url={self.base_url!r}, api_key=[redacted])"

    def client(self, request: LLMRequest) -> anthropic.Anthropic:
        base_url = request.config.get("base_url") or self.base_url
        return sdk_client(
            vendor=self.name,
            base_url=base_url,
            api_key=self.api_key,
            make=lambda: anthropic.Anthropic(
                api_key=self.api_key,
                base_url=base_url,
                max_retries=0,
                timeout=request.timeout,
            ),
        )

    def complete(self, request: LLMRequest) -> LLMResult:
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": anthropic_messages(request.messages),
        }
        if request.system:
            params["system"] = request.system
        if request.tools:
            params["tools"] = anthropic_tools(request.tools)
        client = self.client(request)
        message = errors.calling(
            anthropic,
            VENDOR,
            request.timeout,
            lambda: client.messages.create(**params, timeout=request.timeout),
        )
        return result_from_message(message, requested_model=request.model)
