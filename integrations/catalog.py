"""The tool actions an agent version may be given, and what each one needs.

A version's ``tools`` name actions from this catalog; each needs a capability and an allowed
destination kind in the same version (``agents.config`` checks), and the tool proxy will
check both again at every call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ToolSpec:
    name: str
    kind: str  # the integration module under integrations/<kind>/
    destination: str  # the allowed_destinations key it sends to
    capability: str  # the capabilities key it needs
    description: str
    # What a person approving a call of it risks (low, medium, high, critical): the
    # approval request's risk level starts here.
    risk: str = "medium"


TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "slack_notification", "slack", "slack", "notify", "Post a message to a Slack channel."
        ),
        ToolSpec("send_email", "email", "email", "notify", "Send an e-mail."),
        ToolSpec(
            "http_request",
            "http",
            "external_api",
            "read",
            "GET a URL on an allowed domain.",
            risk="low",
        ),
        ToolSpec(
            "external_api_post",
            "http",
            "external_api",
            "write",
            "POST JSON to an allowed domain.",
            risk="high",
        ),
        ToolSpec(
            "webhook_post",
            "webhook",
            "webhook",
            "write",
            "POST JSON to a configured webhook.",
            risk="high",
        ),
        ToolSpec(
            "n8n_workflow", "n8n", "webhook", "execute", "Start an n8n workflow.", risk="high"
        ),
    )
}

CAPABILITIES = ("read", "write", "notify", "execute")
DESTINATIONS = ("email", "slack", "external_api", "webhook")
DATA_SCOPES = ("datasets", "apis", "services")
LLM_PROVIDERS = ("anthropic", "openai", "simulated")
