"""webhook_post: POST the model's JSON payload to the URL in the tool's config.

With a credential holding ``values["secret"]`` the request is signed so the receiver can
tell it came from us and is fresh::

    X-ControlPlane-Timestamp: <unix seconds>
    X-ControlPlane-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>

``body`` is the exact bytes sent; receivers should reject old timestamps (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from controlplane.serializers import StrictURLField
from integrations.net import safe_request
from integrations.tools.base import Tool, ToolConfig, ToolContext, ToolRefused, ToolResult
from integrations.tools.common import call_limits, check_arguments, response_content

SIGNATURE_HEADER = "X-ControlPlane-Signature"
TIMESTAMP_HEADER = "X-ControlPlane-Timestamp"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    message = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class WebhookToolConfig(ToolConfig):
    url = StrictURLField(max_length=500)


class WebhookPostTool(Tool):
    name = "webhook_post"
    kind = "webhook"
    capability = "write"
    destination = "webhook"
    risk = "high"
    config_serializer = WebhookToolConfig
    description = "POST a JSON payload to this agent's configured webhook."
    input_schema = {
        "type": "object",
        "properties": {"payload": {"type": "object", "description": "The JSON body to send."}},
        "required": ["payload"],
        "additionalProperties": False,
    }
    idempotent_retry = True

    def target(self, arguments: dict[str, Any], config: dict[str, Any]) -> str:
        return str(config.get("url") or "")

    def authorize(self, arguments: dict[str, Any], config: dict[str, Any]) -> None:
        check_arguments(self.input_schema, arguments)
        if not config.get("url"):
            raise ToolRefused("This tool has no webhook URL configured.")

    def run(self, context: ToolContext, arguments: dict[str, Any]) -> ToolResult:
        self.authorize(arguments, context.config)
        url = context.config["url"]
        # Serialised once, here: the signature covers exactly these bytes.
        body = json.dumps(arguments["payload"], ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-ControlPlane-Execution": context.execution_id,
        }
        secret = context.credential.values.get("secret") if context.credential else None
        if secret:
            timestamp = int(time.time())
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign(str(secret), timestamp, body)
        timeout, max_bytes = call_limits(context)
        response = safe_request(
            "POST",
            url,
            headers=headers,
            content=body,
            timeout=timeout,
            max_response_bytes=max_bytes,
            idempotency_key=context.idempotency_key,
        )
        return ToolResult(
            content=response_content(response),
            target=url,
            method="POST",
            detail={"status": response.status, "signed": bool(secret)},
        )
