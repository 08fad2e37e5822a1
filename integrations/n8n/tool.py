"""n8n_workflow: start an n8n workflow by POSTing the model's payload to its webhook.

The URL is the tool config's ``webhook_url``, else the "n8n" credential's
``config["base_url"]`` + ``/webhook/<workflow_id>``. The credential's ``values["api_key"]``
goes in ``X-N8N-API-KEY`` (and ``values["token"]`` / ``values["headers"]`` like the HTTP
tools, for webhooks protected by header auth).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from controlplane.serializers import StrictCharField, StrictURLField
from integrations.net import safe_request
from integrations.tools.base import Tool, ToolConfig, ToolContext, ToolRefused, ToolResult
from integrations.tools.common import (
    call_limits,
    check_arguments,
    credential_headers,
    response_content,
)
from integrations.vault import Secret


def webhook_url(config: dict[str, Any], secret: Secret | None) -> str:
    if config.get("webhook_url"):
        url: str = config["webhook_url"]
        return url
    base_url = (secret.config.get("base_url") if secret else None) or ""
    if not base_url or not config.get("workflow_id"):
        raise ToolRefused(
            "This tool has no webhook_url, and no n8n credential with a base_url is configured."
        )
    return f"{base_url.rstrip('/')}/webhook/{quote(str(config['workflow_id']), safe='')}"


class N8nToolConfig(ToolConfig):
    workflow_id = StrictCharField(max_length=255)
    webhook_url = StrictURLField(max_length=500, required=False)


class N8nWorkflowTool(Tool):
    name = "n8n_workflow"
    kind = "n8n"
    capability = "execute"
    destination = "webhook"
    risk = "high"
    config_serializer = N8nToolConfig
    description = "Start this agent's n8n workflow with a JSON payload; returns its answer."
    input_schema = {
        "type": "object",
        "properties": {
            "payload": {"type": "object", "description": "The JSON the workflow receives."}
        },
        "required": ["payload"],
        "additionalProperties": False,
    }
    idempotent_retry = True

    def target(self, arguments: dict[str, Any], config: dict[str, Any]) -> str:
        return str(config.get("webhook_url") or "")

    def authorize(self, arguments: dict[str, Any], config: dict[str, Any]) -> None:
        check_arguments(self.input_schema, arguments)

    def run(self, context: ToolContext, arguments: dict[str, Any]) -> ToolResult:
        check_arguments(self.input_schema, arguments)
        secret = context.credential
        url = webhook_url(context.config, secret)
        auth = credential_headers(secret)
        if secret is not None and secret.values.get("api_key"):
            auth["X-N8N-API-KEY"] = str(secret.values["api_key"])
        timeout, max_bytes = call_limits(context)
        response = safe_request(
            "POST",
            url,
            headers={"X-ControlPlane-Execution": context.execution_id},
            auth_headers=auth,
            json=arguments["payload"],
            timeout=timeout,
            max_response_bytes=max_bytes,
            idempotency_key=context.idempotency_key,
        )
        return ToolResult(
            content=response_content(response),
            target=str(context.config.get("workflow_id") or url),
            method="POST",
            detail={"status": response.status, "url": url},
        )
