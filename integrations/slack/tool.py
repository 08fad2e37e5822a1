"""slack_notification: post a message to a channel.

The credential says how: ``values["token"]`` (a bot token) calls ``chat.postMessage`` on
``config["base_url"]`` (default Slack's own API), or ``values["webhook_url"]`` posts to an
incoming webhook (which is bound to its channel). Slack answers HTTP 200 with
``{"ok": false, "error": ...}`` for most failures, so those are mapped here.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from controlplane.serializers import StrictCharField
from integrations.net import safe_request
from integrations.tools.base import (
    Tool,
    ToolConfig,
    ToolContext,
    ToolError,
    ToolRefused,
    ToolResult,
)
from integrations.tools.common import call_limits, check_arguments

DEFAULT_BASE_URL = "https://slack.com/api"
# Slack error codes that say "later", not "never".
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable",
     "request_timeout"}
)  # fmt: skip


def _bare(channel: str) -> str:
    return channel.strip().lstrip("#").lower()


class SlackToolConfig(ToolConfig):
    allowed_channels = serializers.ListField(child=StrictCharField(max_length=100), default=list)
    default_channel = StrictCharField(max_length=100, required=False)


class SlackNotificationTool(Tool):
    name = "slack_notification"
    kind = "slack"
    capability = "notify"
    destination = "slack"
    config_serializer = SlackToolConfig
    description = (
        "Post a message to a Slack channel. Give the channel (e.g. #team-updates) unless "
        "the tool has a default channel, and the message text (Slack mrkdwn)."
    )
    input_schema = {
        "type": "object",
        "properties": {
            "channel": {
                "type": "string",
                "maxLength": 100,
                "description": "Channel name such as #alerts, or a channel id.",
            },
            "text": {"type": "string", "minLength": 1, "maxLength": 40000},
        },
        "required": ["text"],
        "additionalProperties": False,
    }

    def target(self, arguments: dict[str, Any], config: dict[str, Any]) -> str:
        return str(arguments.get("channel") or config.get("default_channel") or "")

    def channel(self, arguments: dict[str, Any], config: dict[str, Any]) -> str:
        """The channel this call posts to, if the tool's config allows it."""
        check_arguments(self.input_schema, arguments)
        channel = (arguments.get("channel") or "").strip() or config.get("default_channel") or ""
        if not channel:
            raise ToolRefused("Give a channel: this tool has no default channel.")
        allowed = config.get("allowed_channels") or []
        if allowed and _bare(channel) not in {_bare(item) for item in allowed}:
            raise ToolRefused(f"Channel {channel} is not allowed; allowed: {', '.join(allowed)}.")
        return channel

    def authorize(self, arguments: dict[str, Any], config: dict[str, Any]) -> None:
        self.channel(arguments, config)

    def run(self, context: ToolContext, arguments: dict[str, Any]) -> ToolResult:
        channel = self.channel(arguments, context.config)
        secret = context.credential
        values = secret.values if secret else {}
        timeout, max_bytes = call_limits(context)
        if secret is not None and values.get("token"):
            base_url = (secret.config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
            response = safe_request(
                "POST",
                f"{base_url}/chat.postMessage",
                auth_headers={"Authorization": f"Bearer {values['token']}"},
                headers={"Content-Type": "application/json; charset=utf-8"},
                json={"channel": channel, "text": arguments["text"]},
                timeout=timeout,
                max_response_bytes=max_bytes,
                idempotency_key=context.idempotency_key,
            )
            try:
                answer = response.json()
            except ValueError:
                raise ToolError(
                    f"Slack answered {response.status} with something that is not JSON.",
                    retryable=False,
                    status=response.status,
                ) from None
            if not isinstance(answer, dict) or not answer.get("ok"):
                error = answer.get("error", "unknown") if isinstance(answer, dict) else "unknown"
                raise ToolError(
                    f"Slack refused the message: {error}.",
                    retryable=error in RETRYABLE_ERRORS,
                    status=response.status,
                )
            posted_to = answer.get("channel") or channel
            return ToolResult(
                content={"ok": True, "channel": posted_to, "ts": answer.get("ts")},
                target=channel,
                method="chat.postMessage",
                detail={"status": response.status, "ts": answer.get("ts"), "channel": posted_to},
            )
        if values.get("webhook_url"):
            response = safe_request(
                "POST",
                values["webhook_url"],
                json={"channel": channel, "text": arguments["text"]},
                timeout=timeout,
                max_response_bytes=max_bytes,
                idempotency_key=context.idempotency_key,
            )
            # The webhook URL is itself the secret: never echo it, nor the body's URL.
            return ToolResult(
                content={"ok": True, "channel": channel},
                target=channel,
                method="incoming_webhook",
                detail={"status": response.status},
            )
        raise ToolRefused(
            "No Slack credential with a bot token or an incoming webhook URL is configured."
        )
