"""The interface every tool implements (one module per kind under ``integrations/``).

The tool proxy (``integrations.proxy``) owns everything common: it checks the version's
capabilities and allowed destinations, asks the policy seam, resolves and decrypts the
credential, records the step, the action and the audit event, and retries retryable errors
with the same idempotency key. A tool only knows its own service:

- ``authorize(arguments, config)``: refuse (``ToolRefused``) what its own config does not
  allow — a channel, a recipient, a domain — before anything is sent;
- ``run(context, arguments)``: do it, once, and say what it did (``ToolResult``); raise
  ``ToolError`` with ``retryable`` telling whether trying again can help.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from integrations.vault import Secret

# Caps that apply to every outbound call unless a tool's config lowers them.
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_RESPONSE_BYTES = 1024 * 1024


class ToolRefused(Exception):
    """The call is not allowed (by the tool's config, the destination rules or the network
    guard). Nothing was sent; the reason goes back to the model as a tool error."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ToolError(Exception):
    """The call was attempted and failed. ``retryable``: 429, 5xx, timeout, dropped connection."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status


@dataclass(frozen=True)
class ToolContext:
    execution_id: str
    agent_name: str
    # This tool's entry in the version config ("config" of {"name", "config"}).
    config: dict[str, Any]
    # Same for every attempt of this one action: sent as the Idempotency-Key header by HTTP tools.
    idempotency_key: str
    credential: Secret | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    max_response_bytes: int = MAX_RESPONSE_BYTES


@dataclass(frozen=True)
class ToolResult:
    """What the tool did: ``content`` goes back to the model (JSON-serialisable); ``target``
    and ``method`` are recorded in ``actions_taken`` (e.g. "#job-updates", "chat.postMessage")."""

    content: Any
    target: str
    method: str
    detail: dict[str, Any] = field(default_factory=dict)  # status code, message id... (no secrets)


class Tool(ABC):
    name: str = ""  # the action name in the catalog (integrations.catalog.TOOLS)
    description: str = ""  # shown to the model
    input_schema: dict[str, Any] = {}  # the arguments the model gives, as JSON Schema
    # Whether the remote end deduplicates on our Idempotency-Key, so that an attempt whose
    # outcome is unknown (a crash mid-call) may be sent again with the same key.
    idempotent_retry: bool = False

    def authorize(self, arguments: dict[str, Any], config: dict[str, Any]) -> None:  # noqa: B027
        """Raise ``ToolRefused`` if the tool's own config does not allow this call (by
        default nothing beyond the proxy's own checks)."""

    @abstractmethod
    def run(self, context: ToolContext, arguments: dict[str, Any]) -> ToolResult:
        """Perform the call once."""
