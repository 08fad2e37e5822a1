"""Small helpers the tools share: argument checking, caps, credentials, what the model sees."""

from __future__ import annotations

from typing import Any

from controlplane.jsonschemas import validator
from integrations.net import SafeResponse
from integrations.tools.base import ToolContext, ToolRefused
from integrations.vault import Secret

# What a model gets back of a response body: enough to act on, not a page that floods
# its context window.
MODEL_BODY_CHARS = 8000


def check_arguments(schema: dict[str, Any], arguments: object) -> dict[str, Any]:
    """``arguments`` if they match the tool's ``input_schema``; else ``ToolRefused`` naming
    every problem, so that the model can correct its call."""
    if not isinstance(arguments, dict):
        raise ToolRefused("The arguments must be a JSON object.")
    errors = validator(schema, formats=False).iter_errors(arguments)
    if errors:
        problems = "; ".join(
            f"{'/'.join(str(p) for p in error.absolute_path) or 'arguments'}: {error.message}"
            for error in errors[:5]
        )
        raise ToolRefused(f"Invalid arguments: {problems}")
    return arguments


def call_limits(context: ToolContext) -> tuple[float, int]:
    """The timeout and response-size cap of this call: the proxy's, lowered (never raised)
    by the tool config's ``timeout_seconds`` / ``max_response_bytes``."""
    timeout = float(context.timeout)
    size = int(context.max_response_bytes)
    if context.config.get("timeout_seconds"):
        timeout = min(timeout, float(context.config["timeout_seconds"]))
    if context.config.get("max_response_bytes"):
        size = min(size, int(context.config["max_response_bytes"]))
    return timeout, size


def credential_headers(secret: Secret | None) -> dict[str, str]:
    """The HTTP headers a credential adds: ``values["token"]`` as a bearer token and/or
    ``values["headers"]`` as given. Sent by ``safe_request`` to the first origin only."""
    if secret is None:
        return {}
    headers: dict[str, str] = {}
    token = secret.values.get("token")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    extra = secret.values.get("headers") or {}
    if not isinstance(extra, dict):
        raise ToolRefused(f"The credential {secret.name!r} has malformed headers.")
    for key, value in extra.items():
        headers[str(key)] = str(value)
    return headers


def trimmed(text: str, limit: int = MODEL_BODY_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters not shown]"


def response_content(response: SafeResponse) -> dict[str, Any]:
    """What the model sees of an HTTP answer: status, type and the body (as JSON when it is
    JSON and short, else trimmed text)."""
    content: dict[str, Any] = {"status": response.status, "content_type": response.content_type}
    text = response.text
    if response.content_type.endswith("json") and len(text) <= MODEL_BODY_CHARS:
        try:
            content["body"] = response.json()
        except ValueError:
            content["body"] = text
    else:
        content["body"] = trimmed(text)
    return content
