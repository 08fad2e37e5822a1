"""The one small interface every LLM provider implements.

The agent loop (``executions.runtime``) speaks a provider-neutral conversation; each provider
turns it into its own API's shape and its answer back into an ``LLMResult``. Providers do not
retry: they raise ``ProviderError`` saying whether retrying can help, and the loop retries
with backoff and jitter, within the run's deadline, so that every provider behaves alike.

The neutral conversation is a list of messages, JSON-serialisable so it can be checkpointed:

    {"role": "user", "content": "<text>"}
    {"role": "assistant", "content": "<text, may be empty>",
     "tool_calls": [{"id": "<call id>", "name": "<tool>", "arguments": {...}}]}
    {"role": "tool", "tool_call_id": "<call id>", "name": "<tool>", "content": "<text>",
     "is_error": false}

Consecutive ``tool`` messages answer the tool calls of the assistant message before them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolDefinition:
    """A tool offered to the model: its name, what it does, its arguments' JSON Schema."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class LLMRequest:
    model: str
    system: str
    messages: list[dict[str, Any]]
    tools: list[ToolDefinition] = field(default_factory=list)
    max_tokens: int = 1024
    temperature: float = 0.2
    timeout: float = 60.0  # seconds for this one call
    # The version's ``llm`` config as stored (base_url, simulation script, ...).
    config: dict[str, Any] = field(default_factory=dict)
    # Who is asking (execution id, agent name): for logs and the simulated provider's script.
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LLMResult:
    text: str
    tool_calls: list[ToolCall]
    stop_reason: str  # "end_turn" | "tool_use" | "max_tokens" | provider-specific
    prompt_tokens: int
    completion_tokens: int
    model: str  # the model that answered, as the provider reports it


class ProviderError(Exception):
    """A failed call. ``retryable``: a rate limit, an overload, a 5xx, a timeout or a dropped
    connection — trying again later may work. Otherwise (bad request, bad key) it will not."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        error_type: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.error_type = (
            error_type  # e.g. rate_limited, overloaded, server_error, timeout, auth, bad_request
        )
        self.status = status
        self.retry_after = retry_after


class LLMProvider(ABC):
    """One provider. Instances are cheap; ``complete`` may be called from many threads."""

    name: str = ""

    @abstractmethod
    def complete(self, request: LLMRequest) -> LLMResult:
        """One model call; raises ``ProviderError`` on failure."""
