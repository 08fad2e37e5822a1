"""What a run did: steps, log lines, token and cost totals, actions (the timeline).

Totals are kept on the execution as each LLM call finishes (``F()`` increments, so readers
see tokens and cost so far); a call whose model has no known price makes the cost NULL for
good — unknown, never 0.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from executions.models import Execution, ExecutionAction, ExecutionLog, ExecutionStep
from integrations.llm.pricing import cost_usd


def log(execution: Execution | Any, message: str, level: str = "info", **metadata: Any) -> None:
    ExecutionLog.objects.create(
        execution_id=getattr(execution, "pk", execution),
        at=timezone.now(),
        level=level,
        message=message[:10_000],
        metadata=metadata,
    )


def _next_index(execution_id: Any) -> int:
    last = ExecutionStep.objects.filter(execution_id=execution_id).aggregate(last=Max("index"))[
        "last"
    ]
    return (last or 0) + 1


def add_step(execution: Execution, **fields: Any) -> ExecutionStep:
    """Append a step; its index follows the last one (one runner holds a run at a time)."""
    for _ in range(3):
        try:
            with transaction.atomic():
                return ExecutionStep.objects.create(
                    execution=execution,
                    index=_next_index(execution.pk),
                    attempt=execution.attempt,
                    **fields,
                )
        except IntegrityError:  # pragma: no cover - only if two runners ever overlapped
            continue
    raise RuntimeError("could not allocate a step index")


def record_llm_call(
    execution: Execution,
    *,
    provider: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    latency_ms: int,
    started_at: Any,
    status: str = ExecutionStep.Status.SUCCESS,
    detail: dict[str, Any] | None = None,
) -> Decimal | None:
    """One LLM call: its step and the execution's running totals. Returns its cost."""
    cost = cost_usd(model, prompt_tokens, completion_tokens)
    add_step(
        execution,
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
    Execution.objects.filter(pk=execution.pk).update(
        llm_provider=provider,
        llm_model=model,
        prompt_tokens=F("prompt_tokens") + prompt_tokens,
        completion_tokens=F("completion_tokens") + completion_tokens,
        total_tokens=F("total_tokens") + prompt_tokens + completion_tokens,
        # NULL + x stays NULL: one unpriced call makes the total unknown.
        estimated_cost_usd=None if cost is None else F("estimated_cost_usd") + cost,
        updated_at=timezone.now(),
    )
    return cost


def record_external_report(execution: Execution, data: dict[str, Any]) -> dict[str, Any]:
    """Steps, actions, tokens and cost reported by an external runtime, in seed 000's shape.
    Returns the fields to save with the final status."""
    now = timezone.now()
    for step in data.get("steps_executed", []):
        add_step(
            execution,
            name=step["step"],
            kind=ExecutionStep.Kind.EXTERNAL,
            status=ExecutionStep.Status.SUCCESS
            if step.get("status", "success") == "success"
            else ExecutionStep.Status.FAILED,
            started_at=now,
            latency_ms=step.get("latency_ms") or 0,
            prompt_tokens=0,
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
