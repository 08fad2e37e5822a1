"""The tools: one line per tool action. Adding a tool is its folder under ``integrations/``
(``__init__.py`` and ``tool.py`` with its ``Tool`` subclass and config serializer) and its
line here; the version config's validation (``agents.config``), the approvable actions of the
approval policies, the risk of an approval and the run's tool calls
(``executions.tool_calls``) all read this registry.

Tools are stateless, so one instance of each serves every call and thread.
"""

from __future__ import annotations

from collections.abc import Iterable

from integrations.email.tool import SendEmailTool
from integrations.http.tool import ExternalAPIPostTool, HTTPRequestTool
from integrations.llm.base import ToolDefinition
from integrations.n8n.tool import N8nWorkflowTool
from integrations.slack.tool import SlackNotificationTool
from integrations.tools.base import Tool
from integrations.webhook.tool import WebhookPostTool

TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        SlackNotificationTool(),
        SendEmailTool(),
        HTTPRequestTool(),
        ExternalAPIPostTool(),
        WebhookPostTool(),
        N8nWorkflowTool(),
    )
}


class UnknownTool(KeyError):
    def __str__(self) -> str:
        return f"No tool named {self.args[0]!r}."


def get_tool(name: str) -> Tool:
    """The tool for an action name; ``UnknownTool`` (a ``KeyError``) otherwise."""
    try:
        return TOOLS[name]
    except KeyError:
        raise UnknownTool(name) from None


def tool_definitions(names: Iterable[str]) -> list[ToolDefinition]:
    """What the model is offered for these actions (in the order given)."""
    return [
        ToolDefinition(tool.name, tool.description, tool.input_schema)
        for tool in map(get_tool, names)
    ]
