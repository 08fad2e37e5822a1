"""What a run did: steps, log lines, token and cost totals, actions (the timeline).

A ``RunRecorder`` belongs to one attempt of one run (one runner holds a run at a time). It
numbers the steps itself and keeps the token and cost totals it has not yet written; they
are written with the next checkpoint and with the final status (``totals_fields``), so a
one-turn run costs no extra write. A call whose model has no known price makes the cost
NULL for good — unknown, never 0 (NULL + x stays NULL).
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max
from django.utils import timezone

from controlplane.live import RunChanged, publish_after_commit
from executions.models import Execution, ExecutionAction, ExecutionLog, ExecutionStep
from integrations.llm.pricing import cost_usd


def log(
    execution: Execution | UUID | str, message: str, level: str = "info", **metadata: Any
) -> None:
    """A log line of ``execution`` (the run, or its id)."""
    ExecutionLog.objects.create(
        execution_id=getattr(execution, "pk", execution),
        at=timezone.now(),
        level=level,
        message=message[:10_000],
        metadata=metadata,
    )


class RunRecorder:
    def __init__(self, execution: Execution, *, fresh: bool) -> None:
        self.execution = execution
        # A fresh run has no steps yet; a resumed one continues after the last.
        self._next_index: int | None = 1 if fresh else None
        self._prompt = 0
        self._completion = 0
        self._cost: Decimal | None = Decimal(0)
        self._model: tuple[str, str] | None = None

    def log(self, message: str, level: str = "info", **metadata: Any) -> None:
        log(self.execution, message, level, **metadata)

    def add_step(self, **fields: Any) -> ExecutionStep:
        for _ in range(3):
            if self._next_index is None:
                last = ExecutionStep.objects.filter(execution_id=self.execution.pk).aggregate(
                    last=Max("index")
                )["last"]
                self._next_index = (last or 0) + 1
            # A savepoint only inside a transaction; alone, a failed insert harms nothing.
            guard = transaction.atomic() if connection.in_atomic_block else nullcontext()
            try:
                with guard:
                    step = ExecutionStep.objects.create(
                        execution_id=self.execution.pk,
                        index=self._next_index,
                        attempt=self.execution.attempt,
                        **fields,
                    )
            except IntegrityError:  # pragma: no cover - only if two runners ever overlapped
                self._next_index = None
                continue
            self._next_index += 1
            publish_after_commit(RunChanged(self.execution.pk, self.execution.agent_id))
            return step
        raise RuntimeError("could not allocate a step index")

    def llm_call(
        self,
        *,
        provider: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        latency_ms: int,
        started_at: datetime,
        status: str = ExecutionStep.Status.SUCCESS,
        detail: dict[str, Any] | None = None,
    ) -> Decimal | None:
        """One LLM call: its step, and its tokens and cost added to the totals to write."""
        cost = cost_usd(model, prompt_tokens, completion_tokens)
        self.add_step(
            name=f"llm:{model}",
            kind=ExecutionStep.Kind.LLM_CALL,
            status=status,
            started_at=started_at,
            latency_ms=latency_ms,
            provider=provider,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            detail=detail or {},
        )
        self._prompt += prompt_tokens
        self._completion += completion_tokens
        self._cost = None if cost is None or self._cost is None else self._cost + cost
        self._model = (provider, model)
        return cost

    def totals_fields(self) -> dict[str, Any]:
        """The totals not yet written, as increments to save with a checkpoint or the final
        status; afterwards there is nothing pending."""
        if self._model is None:
            return {}
        fields: dict[str, Any] = {
            "llm_provider": self._model[0],
            "llm_model": self._model[1],
            "prompt_tokens": F("prompt_tokens") + self._prompt,
            "completion_tokens": F("completion_tokens") + self._completion,
            "total_tokens": F("total_tokens") + self._prompt + self._completion,
            "estimated_cost_usd": None
            if self._cost is None
            else F("estimated_cost_usd") + self._cost,
        }
        self._prompt = self._completion = 0
        self._cost = Decimal(0) if self._cost is not None else None
        self._model = None
        return fields


def record_external_report(execution: Execution, data: dict[str, Any]) -> dict[str, Any]:
    """Steps, actions, tokens and cost reported by an external runtime, in seed 000's shape.
    Returns the fields to save with the final status."""
    recorder = RunRecorder(execution, fresh=False)
    now = timezone.now()
    for step in data.get("steps_executed", []):
        recorder.add_step(
            name=step["step"],
            kind=ExecutionStep.Kind.EXTERNAL,
            status=ExecutionStep.Status.SUCCESS
            if step.get("status", "success") == "success"
            else ExecutionStep.Status.FAILED,
            started_at=now,
            latency_ms=step.get("latency_ms") or 0,
            completion_tokens=step.get("tokens_used") or 0,
            detail={"reported": True},
        )
    for index, action in enumerate(data.get("actions_taken", [])):
        ExecutionAction.objects.get_or_create(
            idempotency_key=f"{execution.pk}:report:{index}",
            defaults={
                "execution": execution,
                "action": action["action"],
                "target": action.get("target", ""),
                "method": action.get("method", ""),
                "status": ExecutionAction.Status.SUCCEEDED,
                "approved": action.get("approved", True),
                "auto_approved": action.get("auto_approved", True),
                "result": {"reported": True},
                "started_at": now,
                "finished_at": now,
            },
        )
    model = data.get("llm_model") or ""
    prompt = data.get("prompt_tokens")
    completion = data.get("completion_tokens")
    total = data.get("tokens_used")
    if prompt is not None and completion is not None:
        total = prompt + completion
        cost = cost_usd(model, prompt, completion) if model else None
    else:
        # Without the input/output split the price cannot be applied: cost unknown.
        prompt, completion, cost = 0, 0, None if total else Decimal(0)
    fields: dict[str, Any] = {
        "llm_provider": data.get("llm_provider") or execution.llm_provider,
        "llm_model": model or execution.llm_model,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total or 0,
        "estimated_cost_usd": cost,
        "output": data.get("output"),
        "output_summary": (data.get("output_summary") or "")[:2000],
    }
    if data["status"] != "success":
        fields["error_type"] = "workflow_failed"
        fields["error_message"] = data.get("error_message") or "The workflow reported a failure."
    if execution.started_at:
        fields["total_latency_ms"] = int((now - execution.started_at).total_seconds() * 1000)
    return fields
