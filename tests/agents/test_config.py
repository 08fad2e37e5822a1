"""What a valid version config is: seed fields, defaults, cross-field rules, editing."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.exceptions import ValidationError

from agents.config import config_hash, merge_config, validated_config
from controlplane.errors import flatten_errors
from tests import factories


def errors_of(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        validated_config(raw)
    return {item["field"]: item["message"] for item in flatten_errors(caught.value.detail)}


def seed_config() -> dict[str, Any]:
    payload = factories.seed_payload()
    for key in ("name", "version", "owner_email", "description", "tags"):
        payload.pop(key)
    return payload


def test_seed_fields_become_the_stored_form() -> None:
    config = validated_config(seed_config())

    assert config["runtime"] == "n8n"
    assert config["llm"] is None
    assert config["trigger"] == {
        "type": "webhook",
        "schedule": None,
        "timezone": "UTC",
        "events": [],
    }
    assert config["input_schema"] == {"type": "object"}
    assert config["timeout_seconds"] == 300
    assert "trigger_type" not in config


def test_stored_form_is_valid_input_and_normalizes_to_itself() -> None:
    for raw in (
        seed_config(),
        {
            k: v
            for k, v in factories.LLM_AGENT.items()
            if k not in ("name", "version", "owner_email", "tags")
        },
    ):
        config = validated_config(raw)

        again = validated_config(config)

        assert again == config
        assert config_hash(again) == config_hash(config)


def test_defaults_for_an_empty_config() -> None:
    config = validated_config({})

    assert config["runtime"] == "llm"
    assert config["llm"] == {
        "provider": "simulated",
        "model": "simulated-1",
        "system_prompt": "",
        "temperature": 0.2,
        "max_tokens": 1024,
        "base_url": None,
    }
    assert config["capabilities"] == {
        "read": False,
        "write": False,
        "notify": False,
        "execute": False,
    }
    assert config["tools"] == []


def test_runtime_needs_its_target() -> None:
    assert "n8n_workflow_id" in errors_of({"runtime": "n8n"})
    assert "webhook_url" in errors_of({"runtime": "webhook"})


def test_tools_are_only_for_the_llm_runtime() -> None:
    problems = errors_of(
        {
            **seed_config(),
            "tools": [{"name": "slack_notification", "config": {}}],
        }
    )

    assert "tools" in problems


def test_tool_config_is_checked_per_tool() -> None:
    problems = errors_of(
        {
            "capabilities": {"write": True},
            "allowed_destinations": {"webhook": True},
            "tools": [
                {"name": "webhook_post", "config": {"url": "not a url"}},
                {"name": "webhook_post", "config": {"url": "https://ok.example", "retries": 3}},
            ],
        }
    )

    assert "tools[0].config.url" in problems
    assert "tools[1].config.retries" in problems
    assert "listed twice" in problems["tools[1].name"]


def test_unknown_tool_is_refused() -> None:
    assert "tools[0].name" in errors_of({"tools": [{"name": "launch_missiles"}]})


def test_cron_and_event_triggers() -> None:
    assert "trigger.schedule" in errors_of({"trigger": {"type": "cron"}})
    assert "trigger.schedule" in errors_of({"trigger": {"type": "manual", "schedule": "* * * * *"}})
    assert "trigger.events" in errors_of({"trigger": {"type": "event"}})
    assert "trigger.schedule" in errors_of({"trigger_type": "cron"})
    assert "trigger_type" in errors_of({"trigger_type": "cron", "trigger": {"type": "manual"}})

    config = validated_config(
        {"trigger": {"type": "cron", "schedule": "0 9 * * 1-5", "timezone": "Europe/Paris"}}
    )
    assert config["trigger"]["timezone"] == "Europe/Paris"


@pytest.mark.parametrize(
    "value",
    [True, "0.5", None],
)
def test_numbers_must_be_numbers(value: Any) -> None:
    assert "llm.temperature" in errors_of({"llm": {"temperature": value}})


def test_json_schema_too_deep_is_an_error_not_a_crash() -> None:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(3000):
        schema = {"type": "object", "properties": {"a": schema}}

    assert "input_schema" in errors_of({"input_schema": schema})


def test_merge_replaces_whole_values_and_merges_objects() -> None:
    base = validated_config(seed_config())

    merged = merge_config(
        base,
        {
            "capabilities": {"execute": True},
            "data_scope": {"apis": []},
            "trigger_type": "manual",
            "input_schema": {"type": "object", "properties": {}},
        },
    )

    assert merged["capabilities"] == {**base["capabilities"], "execute": True}
    assert merged["data_scope"] == {**base["data_scope"], "apis": []}
    assert merged["trigger"]["type"] == "manual"
    assert merged["input_schema"] == {"type": "object", "properties": {}}
    assert base["capabilities"]["execute"] is False  # the stored config is not modified
    assert validated_config(merged)["capabilities"]["execute"] is True


def test_switching_away_from_llm_drops_the_llm_block() -> None:
    base = validated_config({"llm": {"provider": "anthropic"}})

    merged = merge_config(base, {"runtime": "webhook", "webhook_url": "https://hooks.example/x"})

    assert validated_config(merged)["llm"] is None
