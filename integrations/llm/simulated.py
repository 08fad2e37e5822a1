"""The ``simulated`` provider: deterministic, offline, free, and always labelled as such.

It lets the demo and the tests run the real agent loop (tool calls, retries, latency,
token accounting) without a key or a network. A version scripts it in ``llm.simulation``:

    {"turns": [{"text": "...", "tool_calls": [{"name": "send_email", "arguments": {...}}]}],
     "text": "final answer", "latency_ms": 0, "fail_times": 0, "fail_with": "rate_limited"}

Turn k (the number of assistant messages already in the conversation) answers with
``turns[k]``; after the script, the final answer ends the run. Tokens are counted from the
text, one per four characters, so that cost accounting and budgets see real numbers.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
from collections import OrderedDict
from typing import Any

from integrations.llm.base import LLMProvider, LLMRequest, LLMResult, ProviderError, ToolCall

MODEL = "simulated-1"
PREFIX = "[simulated]"

# fail_with → (error_type, retryable, HTTP status the real APIs use)
FAILURES: dict[str, tuple[str, bool, int | None]] = {
    "rate_limited": ("rate_limited", True, 429),
    "overloaded": ("overloaded", True, 529),
    "server_error": ("server_error", True, 500),
    "timeout": ("timeout", True, None),
    "bad_request": ("bad_request", False, 400),
    "auth": ("auth", False, 401),
}
DEFAULT_FAILURE = "server_error"

# Scripted failures count calls per (execution, turn) in this process: the loop retries
# within one process, which is what the script exercises. Bounded so that a long-lived
# worker does not keep one entry per run forever.
MAX_TRACKED_TURNS = 10_000
_calls: OrderedDict[tuple[str, int], int] = OrderedDict()
_calls_lock = threading.Lock()


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def prompt_text(request: LLMRequest) -> str:
    """Everything sent, as counted: the system prompt, the messages as compact JSON and,
    if any, the tool definitions as compact JSON."""
    sent = request.system + _compact(request.messages)
    if request.tools:
        sent += _compact(
            [
                {"name": t.name, "description": t.description, "input_schema": t.input_schema}
                for t in request.tools
            ]
        )
    return sent


def completion_text(text: str, tool_calls: list[ToolCall]) -> str:
    """Everything answered, as counted: the text and each call's arguments as compact JSON."""
    return text + "".join(_compact(call.arguments) for call in tool_calls)


def _call_number(execution_id: str | None, turn: int) -> int:
    """1 for the first call of this (execution, turn) in this process, then 2, 3..."""
    key = (str(execution_id), turn)
    with _calls_lock:
        count = _calls.get(key, 0) + 1
        _calls[key] = count
        _calls.move_to_end(key)
        while len(_calls) > MAX_TRACKED_TURNS:
            _calls.popitem(last=False)
        return count


def _first_user_text(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def default_answer(request: LLMRequest) -> str:
    """A short sentence that cannot be mistaken for a model's answer."""
    agent = request.metadata.get("agent") or "agent"
    excerpt = " ".join(_first_user_text(request.messages).split())
    if len(excerpt) > 80:
        excerpt = excerpt[:80].rstrip() + "…"
    return f'{PREFIX} Agent {agent} received "{excerpt}" and answered without a real model.'


class SimulatedProvider(LLMProvider):
    """Answers from the version's ``llm.simulation`` script, or with a labelled default."""

    name = "simulated"

    def complete(self, request: LLMRequest) -> LLMResult:
        script: dict[str, Any] = request.config.get("simulation") or {}
        turn = sum(1 for message in request.messages if message.get("role") == "assistant")

        fail_times = int(script.get("fail_times") or 0)
        if fail_times and _call_number(request.metadata.get("execution_id"), turn) <= fail_times:
            raise self._failure(script.get("fail_with") or DEFAULT_FAILURE, turn)

        latency = int(script.get("latency_ms") or 0) / 1000
        if latency > request.timeout:
            # What a real API that answers too slowly looks like to the loop.
            time.sleep(request.timeout)
            raise ProviderError(
                f"The simulated model did not answer within {request.timeout:g} s "
                f"(latency_ms is {latency * 1000:g}).",
                retryable=True,
                error_type="timeout",
            )
        if latency > 0:
            time.sleep(latency)

        turns = script.get("turns") or []
        if turn < len(turns):
            text, calls = self._scripted(turns[turn], turn, request)
        else:
            final = script.get("text")
            text, calls = (final if final is not None else default_answer(request)), []
        return LLMResult(
            text=text,
            tool_calls=calls,
            stop_reason="tool_use" if calls else "end_turn",
            prompt_tokens=_tokens(prompt_text(request)),
            completion_tokens=_tokens(completion_text(text, calls)),
            model=request.model or MODEL,
        )

    @staticmethod
    def _scripted(
        scripted: dict[str, Any], turn: int, request: LLMRequest
    ) -> tuple[str, list[ToolCall]]:
        """Turn ``turn`` of the script. A call to a tool the run does not offer is left out,
        as a real model cannot call a tool it was not given."""
        offered = {tool.name for tool in request.tools}
        wanted = [call for call in scripted.get("tool_calls") or [] if call.get("name") in offered]
        calls = [
            # A copy: the loop may change its arguments; the stored script must not change.
            ToolCall(
                id=f"sim_{turn}_{index}",
                name=call["name"],
                arguments=copy.deepcopy(call.get("arguments") or {}),
            )
            for index, call in enumerate(wanted)
        ]
        return str(scripted.get("text") or ""), calls

    @staticmethod
    def _failure(fail_with: str, turn: int) -> ProviderError:
        error_type, retryable, status = FAILURES.get(fail_with, FAILURES[DEFAULT_FAILURE])
        return ProviderError(
            f"Simulated {error_type} failure on turn {turn} (llm.simulation.fail_with).",
            retryable=retryable,
            error_type=error_type,
            status=status,
        )
