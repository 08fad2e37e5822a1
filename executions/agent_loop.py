"""The built-in agent loop (runtime ``llm``).

System prompt from the version, the input as the first user message, the version's tools
offered to the model; call the model, run the tool calls it asks for through the tool proxy,
feed the results back, until the model ends its turn — bounded by ``max_turns`` and the
run's deadline, and stopping before the next step when a cancel was requested.

The conversation is checkpointed on the execution: before tool calls are made (with their
idempotency keys) and after their results are in. A run resumed after a crash starts from
the checkpoint, so the model is not asked again for what it already answered and a tool
action that completed is never performed again (the proxy replays its recorded result).
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from controlplane.db import release_connection
from controlplane.jsonschemas import validator
from executions.models import Execution, ExecutionStep
from executions.recording import RunRecorder
from executions.tool_calls import ToolProxy
from integrations.llm.base import LLMProvider, LLMRequest, LLMResult, ProviderError, ToolCall
from integrations.llm.registry import provider_for
from integrations.tools.registry import tool_definitions
from policies.engine import Context, decide

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


@dataclass(frozen=True)
class LoopResult:
    output: Any
    summary: str


def first_message(value: Any) -> str:
    return "Input:\n" + json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


class AgentLoop:
    def __init__(
        self, execution: Execution, recorder: RunRecorder, deadline: float, stop: type[Exception]
    ) -> None:
        self.execution = execution
        self.recorder = recorder
        self.config = execution.agent_version.config
        # A routing policy may have chosen another model for this run.
        self.llm = {**self.config["llm"], **(execution.routing or {})}
        self.deadline = deadline
        self.stop = stop  # RunStopped(status, error_type, message)
        self.tools = tool_definitions(entry["name"] for entry in self.config.get("tools", []))
        self.proxy = ToolProxy(execution, self.config, deadline, recorder)

    def run(self) -> LoopResult:
        resumed = self.execution.checkpoint is not None
        state = self.execution.checkpoint or {
            "messages": [{"role": "user", "content": first_message(self.execution.input)}],
            "turn": 0,
            "pending": [],
        }
        try:
            provider = provider_for(
                provider=self.llm["provider"],
                config=self.llm,
                agent_id=self.execution.agent_id,
                execution_id=self.execution.pk,
            )
        except ProviderError as error:
            raise self.stop("failed", f"llm_{error.error_type}", error.message) from None
        while True:
            if state["pending"]:
                self._run_tools(state)
            if state["turn"] >= self.config.get("max_turns", 10):
                raise self.stop(
                    "failed",
                    "max_turns",
                    f"The model still wanted to act after {state['turn']} turns.",
                )
            # A fresh run was claimed a moment ago: nothing to ask the database before its
            # first call (a cancel before it ran cancels it directly).
            self._guard(ask_database=state["turn"] > 0 or resumed)
            result = self._complete(provider, state["messages"])
            state["turn"] += 1
            state["messages"].append(
                {
                    "role": "assistant",
                    "content": result.text,
                    "tool_calls": [
                        {"id": call.id, "name": call.name, "arguments": call.arguments}
                        for call in result.tool_calls
                    ],
                }
            )
            if not result.tool_calls:
                return self._finish(result.text)
            state["pending"] = [
                {
                    "id": call.id,
                    "name": call.name,
                    "arguments": call.arguments,
                    "key": f"{self.execution.pk}:{state['turn']}:{index}",
                }
                for index, call in enumerate(result.tool_calls)
            ]
            self._checkpoint(state)

    # --- steps ----------------------------------------------------------------------------

    def _guard(self, *, ask_database: bool = True) -> None:
        """Stop before the next step if a cancel was asked for or the time is up."""
        cancel = Execution.objects.filter(pk=self.execution.pk, cancel_requested=True)
        if ask_database and cancel.exists():
            raise self.stop("cancelled", "cancelled", "Cancelled on request.")
        if time.monotonic() >= self.deadline:
            raise self.stop(
                "timed_out",
                "timeout",
                f"The run exceeded its {self.config.get('timeout_seconds')} s timeout.",
            )

    def _run_tools(self, state: dict[str, Any]) -> None:
        results = []
        for pending in state["pending"]:
            self._guard()
            call = ToolCall(pending["id"], pending["name"], pending["arguments"])
            outcome = self.proxy.call(call, pending["key"])
            results.append(
                {
                    "role": "tool",
                    "tool_call_id": call.id,
                    "name": call.name,
                    "content": outcome.content,
                    "is_error": outcome.is_error,
                }
            )
        state["messages"].extend(results)
        state["pending"] = []
        self._checkpoint(state)

    def _checkpoint(self, state: dict[str, Any]) -> None:
        """The conversation so far, with the totals so far (readers see tokens and cost grow)."""
        Execution.objects.filter(pk=self.execution.pk).update(
            checkpoint=state, updated_at=timezone.now(), **self.recorder.totals_fields()
        )

    def _complete(self, provider: LLMProvider, messages: list[dict[str, Any]]) -> LLMResult:
        """One model call, retried with backoff and jitter on retryable errors, within the
        deadline; recorded as a step with its tokens and cost."""
        attempts = settings.LLM_MAX_ATTEMPTS
        for attempt in range(1, attempts + 1):
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise self.stop(
                    "timed_out",
                    "timeout",
                    f"The run exceeded its {self.config.get('timeout_seconds')} s timeout.",
                )
            request = LLMRequest(
                model=self.llm["model"],
                system=self.llm.get("system_prompt", ""),
                messages=messages,
                tools=self.tools,
                max_tokens=self.llm.get("max_tokens", 1024),
                temperature=self.llm.get("temperature", 0.2),
                timeout=min(remaining, settings.LLM_CALL_TIMEOUT_SECONDS),
                config=self.llm,
                metadata={
                    "execution_id": str(self.execution.pk),
                    "agent": self.execution.agent.name,
                },
            )
            started_at, started = timezone.now(), time.monotonic()
            release_connection()  # don't hold a database connection while the model thinks
            try:
                result = provider.complete(request)
            except ProviderError as error:
                latency = int((time.monotonic() - started) * 1000)
                self.recorder.log(
                    f"{self.llm['provider']} call failed: {error.message}",
                    "warn" if error.retryable else "error",
                    error_type=error.error_type,
                    status=error.status,
                    attempt=attempt,
                )
                if not error.retryable or attempt == attempts:
                    self.recorder.llm_call(
                        provider=self.llm["provider"],
                        model=self.llm["model"],
                        prompt_tokens=0,
                        completion_tokens=0,
                        latency_ms=latency,
                        started_at=started_at,
                        status=ExecutionStep.Status.FAILED,
                        detail={"error": error.message, "attempts": attempt},
                    )
                    if error.error_type == "timeout" and time.monotonic() >= self.deadline:
                        raise self.stop(
                            "timed_out", "timeout", "The run's time ran out waiting for the model."
                        ) from None
                    raise self.stop("failed", f"llm_{error.error_type}", error.message) from None
                time.sleep(self._backoff(attempt, error))
                self._guard()
                continue
            self.recorder.llm_call(
                provider=self.llm["provider"],
                model=result.model or self.llm["model"],
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                latency_ms=int((time.monotonic() - started) * 1000),
                started_at=started_at,
                detail={
                    "stop_reason": result.stop_reason,
                    "tool_calls": len(result.tool_calls),
                    "attempts": attempt,
                },
            )
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int, error: ProviderError) -> float:
        cap = settings.LLM_RETRY_MAX_SECONDS
        # (2 ** n is typed Any: a negative n would make a float.)
        delay: float = min(
            cap, settings.LLM_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
        ) * random.uniform(0.5, 1.0)
        if error.retry_after:
            delay = max(delay, min(error.retry_after, cap))
        return max(0.0, min(delay, self.deadline - time.monotonic()))

    def _finish(self, text: str) -> LoopResult:
        """The final answer; with an ``output_schema``, it must be JSON matching it; then
        screened by the content-safety policies that check ``output``."""
        result = self._parsed(text)
        decision = decide(
            agent=self.execution.agent,
            version=self.execution.agent_version,
            context=Context(
                kind="output", payload=result.output, execution_id=str(self.execution.pk)
            ),
        )
        if not decision.allowed:
            raise self.stop(
                "failed", "output_blocked", f"Answer blocked by policy {decision.reason}"
            )
        if decision.payload is result.output:
            return result
        self.recorder.log("the answer was redacted by a content-safety policy")
        redacted = decision.payload
        summary = (
            redacted["text"]
            if isinstance(redacted, dict) and "text" in redacted
            else (json.dumps(redacted, ensure_ascii=False))
        )
        return LoopResult(output=redacted, summary=summary[:500])

    def _parsed(self, text: str) -> LoopResult:
        schema = self.config.get("output_schema") or {}
        if not schema:
            return LoopResult(output={"text": text}, summary=text[:500])
        raw = text.strip()
        fenced = _FENCE.match(raw)
        try:
            value = json.loads(fenced.group(1) if fenced else raw)
        except json.JSONDecodeError:
            raise self.stop(
                "failed", "output_invalid", "The answer is not the JSON the output schema asks for."
            ) from None
        errors = [error.message for error in validator(schema, formats=False).iter_errors(value)]
        if errors:
            raise self.stop(
                "failed",
                "output_invalid",
                "The answer does not match the output schema: " + "; ".join(errors[:5]),
            )
        return LoopResult(output=value, summary=text[:500])
