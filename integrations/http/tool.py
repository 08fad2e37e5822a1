"""http_request (GET) and external_api_post (POST JSON), on the tool's allowed domains.

An empty ``allowed_domains`` refuses everything: an agent reaches only the APIs its author
listed, and the list is enforced again on every redirect hop. The credential's token or
headers are added here (to the first origin only), so the model never sees them.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from controlplane.serializers import StrictCharField, StrictIntegerField
from integrations.addresses import checked_url
from integrations.net import SafeResponse, safe_request
from integrations.tools.base import Tool, ToolConfig, ToolContext, ToolRefused, ToolResult
from integrations.tools.common import (
    call_limits,
    check_arguments,
    credential_headers,
    response_content,
)

URL_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 2000, "description": "http(s) URL."}


class HTTPToolConfig(ToolConfig):
    allowed_domains = serializers.ListField(child=StrictCharField(max_length=253), default=list)
    timeout_seconds = StrictIntegerField(min_value=1, max_value=300, default=30)


class _HTTPTool(Tool):
    kind = "http"
    destination = "external_api"
    config_serializer = HTTPToolConfig
    method = "GET"
    idempotent_retry = True

    def target(self, arguments: dict[str, Any], config: dict[str, Any]) -> str:
        return str(arguments.get("url") or "")

    def checked_url(self, arguments: dict[str, Any], config: dict[str, Any]) -> str:
        """The URL, if the arguments are well-formed and its host is an allowed domain."""
        check_arguments(self.input_schema, arguments)
        domains = config.get("allowed_domains") or []
        if not domains:
            raise ToolRefused("This tool has no allowed domains: it may not call any URL.")
        url: str = arguments["url"]  # a string: the input schema says so
        checked_url(url, domains)
        return url

    def authorize(self, arguments: dict[str, Any], config: dict[str, Any]) -> None:
        self.checked_url(arguments, config)

    def send(self, context: ToolContext, arguments: dict[str, Any]) -> SafeResponse:
        url = self.checked_url(arguments, context.config)
        timeout, max_bytes = call_limits(context)
        return safe_request(
            self.method,
            url,
            headers={"Accept": "application/json, text/*;q=0.9, */*;q=0.5"},
            auth_headers=credential_headers(context.credential),
            json=arguments.get("payload") if self.method == "POST" else None,
            timeout=timeout,
            max_response_bytes=max_bytes,
            idempotency_key=context.idempotency_key,
            allowed_domains=context.config.get("allowed_domains") or [],
        )

    def run(self, context: ToolContext, arguments: dict[str, Any]) -> ToolResult:
        response = self.send(context, arguments)
        return ToolResult(
            content={**response_content(response), "url": response.url},
            target=arguments["url"],
            method=self.method,
            detail={"status": response.status, "final_url": response.url},
        )


class HTTPRequestTool(_HTTPTool):
    name = "http_request"
    capability = "read"
    risk = "low"
    description = "GET a URL on one of the allowed domains and read the answer."
    input_schema = {
        "type": "object",
        "properties": {"url": URL_SCHEMA},
        "required": ["url"],
        "additionalProperties": False,
    }
    method = "GET"


class ExternalAPIPostTool(_HTTPTool):
    name = "external_api_post"
    capability = "write"
    risk = "high"
    description = "POST a JSON payload to a URL on one of the allowed domains."
    input_schema = {
        "type": "object",
        "properties": {
            "url": URL_SCHEMA,
            "payload": {"type": "object", "description": "The JSON body to send."},
        },
        "required": ["url", "payload"],
        "additionalProperties": False,
    }
    method = "POST"
