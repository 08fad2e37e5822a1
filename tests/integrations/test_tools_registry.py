"""Every catalog action has a tool, offered to the model with a usable JSON Schema."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator
from rest_framework.exceptions import ValidationError

from agents.config import validated_config
from integrations.llm.base import ToolDefinition
from integrations.tools.base import Tool
from integrations.tools.registry import TOOLS, UnknownTool, get_tool, tool_definitions


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_catalog_action_has_a_tool(name: str) -> None:
    tool = get_tool(name)

    assert isinstance(tool, Tool)
    assert tool.name == name
    assert tool.description
    Draft202012Validator.check_schema(tool.input_schema)
    assert tool.input_schema["type"] == "object"
    assert tool.input_schema["additionalProperties"] is False


def test_unknown_tool_is_a_clear_key_error() -> None:
    with pytest.raises(KeyError) as caught:
        get_tool("launch_rockets")

    assert isinstance(caught.value, UnknownTool)
    assert str(caught.value) == "No tool named 'launch_rockets'."


def test_tool_definitions_in_the_order_asked() -> None:
    definitions = tool_definitions(["webhook_post", "slack_notification"])

    assert [type(d) for d in definitions] == [ToolDefinition, ToolDefinition]
    assert [d.name for d in definitions] == ["webhook_post", "slack_notification"]
    assert definitions[1].input_schema == get_tool("slack_notification").input_schema


def version_config(tool: dict[str, object]) -> dict[str, object]:
    return {
        "capabilities": {"notify": True},
        "allowed_destinations": {"slack": True},
        "tools": [tool],
    }


def test_tool_configs_take_a_credential_name_and_lower_caps() -> None:
    config = validated_config(
        version_config(
            {
                "name": "slack_notification",
                "config": {"credential": "slack-ops", "timeout_seconds": 5,
                           "max_response_bytes": 10_000},
            }
        )
    )  # fmt: skip

    assert config["tools"][0]["config"] == {
        "credential": "slack-ops",
        "timeout_seconds": 5,
        "max_response_bytes": 10_000,
        "allowed_channels": [],
    }


def test_configs_without_the_new_fields_normalize_as_before() -> None:
    config = validated_config(version_config({"name": "slack_notification", "config": {}}))

    assert config["tools"][0]["config"] == {"allowed_channels": []}


@pytest.mark.parametrize(
    "change", [{"credential": "Not A Slug!"}, {"credential": 3}, {"timeout_seconds": 0}]
)
def test_bad_tool_config_fields_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        validated_config(version_config({"name": "slack_notification", "config": change}))
