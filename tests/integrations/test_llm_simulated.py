"""The simulated provider: deterministic answers, scripted turns and tool calls, tokens
counted from the text, real latency, scripted failures; and its script in a version config."""

from __future__ import annotations

import math
import threading
import time
import uuid
from typing import Any

import pytest
from rest_framework.exceptions import ValidationError

from agents.config import config_hash, validated_config
from controlplane.errors import flatten_errors
from integrations.llm.base import LLMRequest, ProviderError, ToolCall, ToolDefinition
from integrations.llm.simulated import SimulatedProvider

SEND_EMAIL = ToolDefinition("send_email", "Send an e-mail.", {"type": "object"})
SLACK = ToolDefinition("slack_notification", "Post to Slack.", {"type": "object"})

SCRIPT: dict[str, Any] = {
    "turns": [
        {
            "text": "Mailing ops.",
            "tool_calls": [
                {"name": "send_email", "arguments": {"to": "ops@company.com"}},
                {"name": "slack_notification", "arguments": {"channel": "#ops"}},
            ],
        },
        {"text": "And sales.", "tool_calls": [{"name": "send_email", "arguments": {"to": "s"}}]},
    ],
    "text": "Both teams know.",
}


def simulated_request(
    *,
    messages: list[dict[str, Any]] | None = None,
    simulation: dict[str, Any] | None = None,
    tools: list[ToolDefinition] | None = None,
    execution_id: str | None = None,
    **changes: Any,
) -> LLMRequest:
    fields: dict[str, Any] = {
        "model": "simulated-1",
        "system": "Summarize.",
        "messages": messages or [{"role": "user", "content": "Summarize the inbox of ops."}],
        "tools": tools if tools is not None else [SEND_EMAIL],
        "config": {"provider": "simulated", "simulation": simulation},
        "metadata": {
            "agent": "email-summarizer",
            "execution_id": execution_id or str(uuid.uuid4()),
        },
    }
    return LLMRequest(**{**fields, **changes})


def after_turns(count: int) -> list[dict[str, Any]]:
    """A conversation in which the model has already answered ``count`` times."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Go."}]
    for turn in range(count):
        messages.append({"role": "assistant", "content": "", "tool_calls": []})
        messages.append({"role": "tool", "tool_call_id": f"sim_{turn}_0", "content": "ok"})
    return messages


def test_default_answer_is_labelled_names_the_agent_and_quotes_the_input() -> None:
    result = SimulatedProvider().complete(simulated_request())

    assert result.text.startswith("[simulated]")
    assert "email-summarizer" in result.text
    assert '"Summarize the inbox of ops."' in result.text
    assert result.stop_reason == "end_turn"
    assert result.tool_calls == []
    assert result.model == "simulated-1"


def test_same_request_gives_the_same_answer() -> None:
    first = SimulatedProvider().complete(simulated_request(execution_id="run-1"))
    again = SimulatedProvider().complete(simulated_request(execution_id="run-2"))

    assert first == again


def test_default_answer_quotes_only_the_start_of_a_long_input() -> None:
    long_input = "word " * 100

    text = (
        SimulatedProvider()
        .complete(simulated_request(messages=[{"role": "user", "content": long_input}]))
        .text
    )

    assert "…" in text
    assert len(text) < 200


def test_scripted_turns_answer_in_order_then_the_final_text() -> None:
    provider = SimulatedProvider()
    tools = [SEND_EMAIL, SLACK]

    first = provider.complete(
        simulated_request(messages=after_turns(0), simulation=SCRIPT, tools=tools)
    )
    second = provider.complete(
        simulated_request(messages=after_turns(1), simulation=SCRIPT, tools=tools)
    )
    final = provider.complete(
        simulated_request(messages=after_turns(2), simulation=SCRIPT, tools=tools)
    )

    assert first.text == "Mailing ops."
    assert first.stop_reason == "tool_use"
    assert first.tool_calls == [
        ToolCall("sim_0_0", "send_email", {"to": "ops@company.com"}),
        ToolCall("sim_0_1", "slack_notification", {"channel": "#ops"}),
    ]
    assert second.text == "And sales."
    assert second.tool_calls == [ToolCall("sim_1_0", "send_email", {"to": "s"})]
    assert (final.text, final.tool_calls, final.stop_reason) == (
        "Both teams know.",
        [],
        "end_turn",
    )


def test_a_scripted_call_to_a_tool_not_offered_is_left_out() -> None:
    result = SimulatedProvider().complete(
        simulated_request(messages=after_turns(0), simulation=SCRIPT, tools=[SEND_EMAIL])
    )

    assert [call.name for call in result.tool_calls] == ["send_email"]
    assert [call.id for call in result.tool_calls] == ["sim_0_0"]


def test_a_turn_whose_calls_are_all_refused_ends_the_run() -> None:
    result = SimulatedProvider().complete(
        simulated_request(messages=after_turns(0), simulation=SCRIPT, tools=[])
    )

    assert result.tool_calls == []
    assert result.stop_reason == "end_turn"
    assert result.text == "Mailing ops."


def test_scripted_arguments_are_copies_not_the_stored_script() -> None:
    script = {"turns": [{"tool_calls": [{"name": "send_email", "arguments": {"to": "a"}}]}]}

    result = SimulatedProvider().complete(simulated_request(simulation=script))
    result.tool_calls[0].arguments["to"] = "changed by the loop"

    assert script["turns"][0]["tool_calls"][0]["arguments"] == {"to": "a"}


def test_tokens_are_a_quarter_of_the_characters_sent_and_answered() -> None:
    request = LLMRequest(
        model="simulated-1",
        system="abcd",
        messages=[{"role": "user", "content": "hi"}],
        config={"simulation": {"text": "0123456789"}},
    )

    result = SimulatedProvider().complete(request)

    # "abcd" + '[{"content":"hi","role":"user"}]' = 4 + 32 characters
    assert result.prompt_tokens == 9
    assert result.completion_tokens == math.ceil(10 / 4)


def test_tool_definitions_and_call_arguments_count_as_tokens() -> None:
    script = {"turns": [{"text": "", "tool_calls": [{"name": "send_email", "arguments": {}}]}]}
    bare = SimulatedProvider().complete(simulated_request(tools=[SEND_EMAIL], simulation=script))
    with_args = SimulatedProvider().complete(
        simulated_request(
            tools=[SEND_EMAIL, SLACK],
            simulation={
                "turns": [
                    {
                        "text": "",
                        "tool_calls": [{"name": "send_email", "arguments": {"to": "x" * 40}}],
                    }
                ]
            },
        )
    )

    assert bare.completion_tokens == 1  # "{}"
    assert with_args.completion_tokens == math.ceil(len('{"to":"' + "x" * 40 + '"}') / 4)
    assert with_args.prompt_tokens > bare.prompt_tokens  # one more tool definition sent


def test_longer_conversations_cost_more_prompt_tokens() -> None:
    short = SimulatedProvider().complete(simulated_request(messages=after_turns(0)))
    long = SimulatedProvider().complete(simulated_request(messages=after_turns(3)))

    assert long.prompt_tokens > short.prompt_tokens


def test_latency_is_a_real_wait() -> None:
    started = time.monotonic()
    SimulatedProvider().complete(simulated_request(simulation={"latency_ms": 250}))

    assert time.monotonic() - started >= 0.25


def test_latency_beyond_the_timeout_is_a_retryable_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        SimulatedProvider().complete(
            simulated_request(simulation={"latency_ms": 5000}, timeout=0.2)
        )

    assert 0.2 <= time.monotonic() - started < 2
    assert (caught.value.error_type, caught.value.retryable) == ("timeout", True)


def test_first_calls_of_a_turn_fail_as_scripted_then_it_answers() -> None:
    provider = SimulatedProvider()
    script = {"fail_times": 2, "fail_with": "rate_limited", "text": "finally"}
    request = simulated_request(simulation=script, execution_id="run-fails")

    errors = []
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            provider.complete(request)
        errors.append(caught.value)

    assert [(e.error_type, e.retryable, e.status) for e in errors] == [
        ("rate_limited", True, 429),
        ("rate_limited", True, 429),
    ]
    assert provider.complete(request).text == "finally"


def test_scripted_failures_count_per_execution_and_per_turn() -> None:
    provider = SimulatedProvider()
    script = {"fail_times": 1, "fail_with": "overloaded", "turns": [{"text": "t0"}]}
    run = str(uuid.uuid4())

    with pytest.raises(ProviderError):
        provider.complete(simulated_request(simulation=script, execution_id=run))
    assert provider.complete(simulated_request(simulation=script, execution_id=run)).text == "t0"

    # The next turn of the same run fails once again, and so does another run.
    next_turn = simulated_request(messages=after_turns(1), simulation=script, execution_id=run)
    with pytest.raises(ProviderError):
        provider.complete(next_turn)
    assert provider.complete(next_turn).text.startswith("[simulated]")
    with pytest.raises(ProviderError):
        provider.complete(simulated_request(simulation=script))


@pytest.mark.parametrize(
    ("fail_with", "error_type", "retryable", "status"),
    [
        ("rate_limited", "rate_limited", True, 429),
        ("overloaded", "overloaded", True, 529),
        ("server_error", "server_error", True, 500),
        ("timeout", "timeout", True, None),
        ("bad_request", "bad_request", False, 400),
        ("auth", "auth", False, 401),
    ],
)
def test_each_scripted_failure_is_the_matching_provider_error(
    fail_with: str, error_type: str, retryable: bool, status: int | None
) -> None:
    with pytest.raises(ProviderError) as caught:
        SimulatedProvider().complete(
            simulated_request(simulation={"fail_times": 1, "fail_with": fail_with})
        )

    assert (caught.value.error_type, caught.value.retryable, caught.value.status) == (
        error_type,
        retryable,
        status,
    )
    assert "imulated" in caught.value.message


def test_scripted_failures_are_counted_exactly_under_concurrent_calls() -> None:
    provider = SimulatedProvider()
    request = simulated_request(simulation={"fail_times": 3, "fail_with": "server_error"})
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def call() -> None:
        start.wait()
        try:
            provider.complete(request)
            outcome = "ok"
        except ProviderError:
            outcome = "failed"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["failed"] * 3 + ["ok"] * 9


# The script in a version's config (agents.config)


def errors_of(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        validated_config(raw)
    return {item["field"]: item["message"] for item in flatten_errors(caught.value.detail)}


def test_a_simulation_script_is_stored_with_its_defaults() -> None:
    config = validated_config(
        {
            "llm": {
                "provider": "simulated",
                "simulation": {"turns": [{"tool_calls": [{"name": "send_email"}]}]},
            }
        }
    )

    assert config["llm"]["simulation"] == {
        "turns": [{"text": "", "tool_calls": [{"name": "send_email", "arguments": {}}]}],
        "text": None,
        "latency_ms": 0,
        "fail_times": 0,
        "fail_with": "server_error",
    }
    assert validated_config(config) == config  # the stored form is valid input


def test_a_config_stored_without_a_script_normalizes_to_itself() -> None:
    stored = validated_config({"llm": {"provider": "anthropic", "model": "claude-opus-4-5"}})

    assert "simulation" not in stored["llm"]
    assert validated_config(stored) == stored
    assert config_hash(validated_config(stored)) == config_hash(stored)


def test_a_null_script_is_accepted() -> None:
    config = validated_config({"llm": {"provider": "simulated", "simulation": None}})

    assert config["llm"]["simulation"] is None


@pytest.mark.parametrize(
    ("simulation", "field"),
    [
        ({"latency": 5}, "llm.simulation.latency"),
        ({"latency_ms": -1}, "llm.simulation.latency_ms"),
        ({"latency_ms": "100"}, "llm.simulation.latency_ms"),
        ({"fail_with": "teapot"}, "llm.simulation.fail_with"),
        ({"turns": [{"text": 3}]}, "llm.simulation.turns[0].text"),
        ({"turns": "one"}, "llm.simulation.turns"),
        (
            {"turns": [{"tool_calls": [{"name": "x", "arguments": []}]}]},
            "llm.simulation.turns[0].tool_calls[0].arguments",
        ),
        (
            {"turns": [{"tool_calls": [{"name": "x", "extra": 1}]}]},
            "llm.simulation.turns[0].tool_calls[0].extra",
        ),
    ],
)
def test_a_bad_simulation_script_is_refused_with_its_path(
    simulation: dict[str, Any], field: str
) -> None:
    errors = errors_of({"llm": {"provider": "simulated", "simulation": simulation}})

    assert field in errors
