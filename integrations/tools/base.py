"""What a tool is: one class per tool action, in its integration's folder
(``integrations/<kind>/tool.py``), registered by one line in ``integrations.tools.registry``.

A tool declares what the rest of the control plane needs to know of it — its action name,
the description and input schema the model is offered, the capability a version must allow
for it, the destination kind it sends to (what ``allowed_destinations`` and the destination
policies judge), the risk a person approving a call of it takes, the serializer of its entry
in a version's ``tools``, and how to read a call's target from its arguments. The version
config's validation, the catalog the console shows and the run's tool calls
(``executions.tool_calls``) all read these declarations from the registry.

The tool call path owns everything common: it checks the version's capabilities and allowed
destinations, asks the policy engine, resolves and decrypts the credential, records the step,
the action and the audit event, and retries retryable errors with the same idempotency key.
A tool only knows its own service:

- ``authorize(arguments, config)``: refuse (``ToolRefused``) what its own config does not
  allow — a channel, a recipient, a domain — before anything is sent;
- ``run(context, arguments)``: do it, once, and say what it did (``ToolResult``); raise
  ``ToolError`` with ``retryable`` telling whether trying again can help.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.core.validators import validate_slug

from controlplane.serializers import StrictCharField, StrictIntegerField, StrictSerializer
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


class ToolConfig(StrictSerializer):
    """Fields every tool's config may have (a tool's own serializer adds its fields). All
    optional and without defaults, so that configs stored before they existed normalize to
    exactly what they were (same config_hash)."""

    # The vault credential this tool uses; without it the proxy takes the credential named
    # after the tool's kind ("slack", "email", "http", "webhook", "n8n") if there is one.
    credential = StrictCharField(max_length=100, required=False, validators=[validate_slug])
    # Lower (never raise) the proxy's caps for this tool's calls.
    timeout_seconds = StrictIntegerField(min_value=1, max_value=300, required=False)
    max_response_bytes = StrictIntegerField(min_value=1, max_value=10 * 1024 * 1024, required=False)


class Tool(ABC):
    name: ClassVar[str]  # the action name a version's ``tools`` lists ("slack_notification")
    kind: ClassVar[str]  # its integration's folder, and the credential it uses by default
    description: ClassVar[str]  # shown to the model
    input_schema: ClassVar[dict[str, Any]]  # the arguments the model gives, as JSON Schema
    capability: ClassVar[str]  # the ``capabilities`` key a version must allow for it
    destination: ClassVar[str]  # the ``allowed_destinations`` key it sends to
    # What a person approving a call of it risks (low, medium, high, critical): the approval
    # request's risk level starts here.
    risk: ClassVar[str] = "medium"
    # Its entry's ``config`` in a version's ``tools``.
    config_serializer: ClassVar[type[ToolConfig]] = ToolConfig
    # Whether the remote end deduplicates on our Idempotency-Key, so that an attempt whose
    # outcome is unknown (a crash mid-call) may be sent again with the same key.
    idempotent_retry: ClassVar[bool] = False

    @abstractmethod
    def target(self, arguments: dict[str, Any], config: dict[str, Any]) -> str | list[str]:
        """Where a call goes, as the destination policies judge it (a channel, recipients,
        a URL), read without refusing anything: the policies decide."""

    def authorize(self, arguments: dict[str, Any], config: dict[str, Any]) -> None:  # noqa: B027
        """Raise ``ToolRefused`` if the tool's own config does not allow this call (by
        default nothing beyond the proxy's own checks)."""

    @abstractmethod
    def run(self, context: ToolContext, arguments: dict[str, Any]) -> ToolResult:
        """Perform the call once."""
