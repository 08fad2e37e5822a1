"""The worker side of a run: claim it, run its runtime, finish it.

``run_execution`` is what the Celery task calls. It claims the row with a conditional
update (queued → running at this attempt): a second delivery of the same message, or a
stale one from an earlier attempt, finds nothing to claim and returns. The run then goes
to its runtime — the built-in agent loop (``llm``), an n8n workflow that reports back
(``n8n``), or a webhook that answers (``webhook``) — and ends in exactly one terminal status.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from controlplane.serializers import storable_text
from executions import heartbeat
from executions.agent_loop import AgentLoop
from executions.approval_flow import approval_hold
from executions.models import Execution, ExecutionStep
from executions.recording import RunRecorder
from executions.services import callback_token_new, execution_transition
from executions.tool_calls import ApprovalRequired
from integrations import net
from integrations.tools.base import ToolError, ToolRefused

logger = logging.getLogger(__name__)
S = Execution.Status


class RunStopped(Exception):
    """The run ends here with ``status`` (failed, timed_out, cancelled)."""

    def __init__(self, status: str, error_type: str = "", message: str = "") -> None:
        super().__init__(message or status)
        self.status = status
        self.error_type = error_type
        self.message = message


@dataclass
class Outcome:
    """How a runtime ended: finished (output), or handed to an external runtime."""

    output: Any = None
    summary: str = ""
    awaiting_report: bool = False
    fields: dict[str, Any] = field(default_factory=dict)


def run_execution(*, execution_id: str, attempt: int, worker: str = "") -> str | None:
    """Claim and run one execution; returns its final status, or None if not ours to run."""

    def claim(locked: Execution) -> dict[str, Any]:
        now = timezone.now()
        fields: dict[str, Any] = {"heartbeat_at": now, "worker": worker[:200]}
        if locked.started_at is None:
            fields["started_at"] = now
        if locked.deadline_at is None:
            # The time budget counts from the first start: a re-run after a crash keeps its
            # deadline; a run resumed after an approval gets back the time it had left
            # (waiting for a person does not count).
            left = (locked.checkpoint or {}).get("time_left")
            timeout = left or locked.agent_version.config.get("timeout_seconds", 300)
            fields["deadline_at"] = now + timedelta(seconds=timeout)
        return fields

    execution = execution_transition(
        execution_id=execution_id,
        to=S.RUNNING,
        expect={S.QUEUED},
        attempt=attempt,
        fields=claim,
        related=("agent", "agent_version"),
    )
    if execution is None:
        return None
    resumed = attempt > 1 or execution.checkpoint is not None
    recorder = RunRecorder(execution, fresh=not resumed)
    if resumed:
        recorder.log(f"attempt {attempt} resumes the run on {worker or 'a worker'}")
    heartbeat.track(execution.pk)
    try:
        outcome = RUNTIMES[execution.agent_version.config["runtime"]](execution, recorder)
    except RunStopped as stop:
        return _stop(execution, recorder, stop)
    except ApprovalRequired as pause:
        return _wait_for_approval(execution, recorder, pause)
    except Exception as exc:
        return _fail_unforeseen(execution, recorder, exc)
    finally:
        heartbeat.untrack(execution.pk)
    try:
        return _finish(execution, recorder, outcome)
    except Exception as exc:  # e.g. an output the database cannot store
        return _fail_unforeseen(execution, recorder, exc)


def _finish(execution: Execution, recorder: RunRecorder, outcome: Outcome) -> str | None:
    if outcome.awaiting_report:
        Execution.objects.filter(pk=execution.pk).update(awaiting_report=True, **outcome.fields)
        recorder.log("handed to the workflow; waiting for its report")
        return S.RUNNING
    finished = execution_transition(
        execution_id=execution.pk,
        to=S.SUCCESS,
        expect={S.RUNNING},
        unless_cancel_requested=True,  # a cancel that came while the model answered wins
        fields={
            "output": outcome.output,
            "output_summary": outcome.summary[:2000],
            "total_latency_ms": _elapsed_ms(execution),
            "checkpoint": None,
            **recorder.totals_fields(),
            **outcome.fields,
        },
    )
    if finished is None:
        return _stop(
            execution, recorder, RunStopped(S.CANCELLED, "cancelled", "Cancelled on request.")
        )
    return finished.status


def _wait_for_approval(
    execution: Execution, recorder: RunRecorder, pause: ApprovalRequired
) -> str | None:
    """A tool call needs a person's approval: the run waits in pending_approval, its
    worker freed; its checkpoint holds the call, so it resumes there once approved."""
    decision = pause.decision
    recorder.add_step(
        name=f"approval:{pause.call.name}",
        kind=ExecutionStep.Kind.APPROVAL,
        status=ExecutionStep.Status.PENDING,
        started_at=timezone.now(),
        detail={
            "action": pause.call.name,
            "arguments": pause.call.arguments,
            "key": pause.key,
            "reason": decision.reason,
            "policy_id": decision.policy_id,
            "approval": decision.approval,
            "policy_trace": decision.trace,
        },
    )
    recorder.log(f"waiting for approval: {decision.reason}", "warn")

    def pause_fields(locked: Execution) -> dict[str, Any]:
        left = (locked.deadline_at - timezone.now()).total_seconds() if locked.deadline_at else 0
        return {
            "heartbeat_at": None,
            "worker": "",
            "deadline_at": None,
            "checkpoint": {**(locked.checkpoint or {}), "time_left": max(1.0, left)},
            **recorder.totals_fields(),
        }

    with transaction.atomic():
        waiting = execution_transition(
            execution_id=execution.pk,
            to=S.PENDING_APPROVAL,
            expect={S.RUNNING},
            unless_cancel_requested=True,
            fields=pause_fields,
            reason=decision.reason,
        )
        if waiting is not None:
            approval_hold(
                execution=waiting,
                decision=decision,
                action=pause.call.name,
                call_key=pause.key,
                requested_action=pause.requested_action,
            )
    if waiting is None:
        return _stop(
            execution, recorder, RunStopped(S.CANCELLED, "cancelled", "Cancelled on request.")
        )
    return waiting.status


def _fail_unforeseen(execution: Execution, recorder: RunRecorder, exc: Exception) -> str | None:
    """A run that broke on something unforeseen ends ``failed`` with the reason, never stays
    ``running``: through the recorder if it can still write, else with the reason alone."""
    logger.exception("execution %s failed unexpectedly", execution.pk)
    message = storable_text(f"{type(exc).__name__}: {exc}")
    try:
        return _stop(execution, recorder, RunStopped(S.FAILED, "internal_error", message))
    except Exception:
        logger.exception("execution %s: the failure could not be recorded in full", execution.pk)
    finished = execution_transition(
        execution_id=execution.pk,
        to=S.FAILED,
        expect={S.RUNNING},
        fields={"error_type": "internal_error", "error_message": message[:10_000]},
        reason="internal_error",
    )
    return finished.status if finished else None


def _elapsed_ms(execution: Execution) -> int:
    started_at = cast(datetime, execution.started_at)  # set when the run was claimed
    return int((timezone.now() - started_at).total_seconds() * 1000)


def _stop(execution: Execution, recorder: RunRecorder, stop: RunStopped) -> str | None:
    recorder.log(
        stop.message or stop.status,
        "error" if stop.status == S.FAILED else "warn",
        error_type=stop.error_type,
    )
    finished = execution_transition(
        execution_id=execution.pk,
        to=stop.status,
        expect={S.RUNNING},
        fields={
            "error_type": stop.error_type,
            "error_message": stop.message[:10_000],
            "total_latency_ms": _elapsed_ms(execution),
            **recorder.totals_fields(),
        },
        reason=stop.error_type,
    )
    return finished.status if finished else None


def deadline_monotonic(execution: Execution) -> float:
    """The run's deadline on the monotonic clock of this process."""
    deadline_at = cast(datetime, execution.deadline_at)  # set when the run was claimed
    return time.monotonic() + (deadline_at - timezone.now()).total_seconds()


# --- runtimes ---------------------------------------------------------------------------------


def run_llm(execution: Execution, recorder: RunRecorder) -> Outcome:
    result = AgentLoop(execution, recorder, deadline_monotonic(execution), stop=RunStopped).run()
    return Outcome(output=result.output, summary=result.summary)


def run_n8n(execution: Execution, recorder: RunRecorder) -> Outcome:
    """POST seed 000's webhook payload to the workflow; the run then waits (freeing the
    worker) for ``POST /api/v1/executions/{id}/report``, authenticated by a per-execution
    token. No report before the deadline: timed_out (maintenance)."""
    config = execution.agent_version.config
    url = (
        config.get("webhook_url")
        # The two URL settings have defaults: never None.
        or f"{settings.N8N_BASE_URL.rstrip('/')}/webhook/{config['n8n_workflow_id']}"
    )
    token, token_hash = callback_token_new()
    Execution.objects.filter(pk=execution.pk).update(callback_token_hash=token_hash)
    payload = {
        "execution_id": str(execution.pk),
        "agent_id": str(execution.agent_id),
        "trigger_context": {
            "input": execution.input,
            "trigger_source": execution.trigger_source,
            "trigger_user": execution.trigger_user,
            "agent_name": execution.agent.name,
            "agent_version": execution.agent_version.version,
        },
        "approved_actions": [tool["name"] for tool in config.get("tools", [])],
        "policy_constraints": {},
        "callback_url": settings.PUBLIC_BASE_URL.rstrip("/")
        + reverse("api:execution-report", args=[execution.pk]),
        "callback_token": token,
    }
    _post_external(execution, recorder, url, payload, what="n8n workflow")
    return Outcome(awaiting_report=True)


def run_webhook(execution: Execution, recorder: RunRecorder) -> Outcome:
    """POST the input to the version's webhook URL; its JSON answer is the output."""
    config = execution.agent_version.config
    payload = {
        "execution_id": str(execution.pk),
        "agent": execution.agent.name,
        "input": execution.input,
    }
    response = _post_external(execution, recorder, config["webhook_url"], payload, what="webhook")
    try:
        output = json.loads(response.text) if response.text else None
    except json.JSONDecodeError:
        output = {"text": response.text[:10_000]}
    return Outcome(output=output, summary=(response.text or "")[:500])


def _post_external(
    execution: Execution, recorder: RunRecorder, url: str, payload: dict[str, Any], *, what: str
) -> net.SafeResponse:
    started_at, started = timezone.now(), time.monotonic()
    deadline_at = cast(datetime, execution.deadline_at)  # set when the run was claimed
    remaining = (deadline_at - timezone.now()).total_seconds()
    try:
        # The target is the operator's own configuration, not the model's: private
        # networks (an n8n next door) are allowed here.
        response = net.safe_request(
            "POST",
            url,
            json=payload,
            timeout=max(1.0, min(30.0, remaining)),
            max_response_bytes=1024 * 1024,
            idempotency_key=f"{execution.pk}:{execution.attempt}:start",
            allow_private=True,
        )
    except (ToolError, ToolRefused) as exc:
        message = getattr(exc, "message", None) or getattr(exc, "reason", str(exc))
        recorder.add_step(
            name=what,
            kind="external",
            status="failed",
            started_at=started_at,
            latency_ms=int((time.monotonic() - started) * 1000),
            detail={"url": url, "error": message},
        )
        raise RunStopped(
            S.FAILED, "external_runtime_error", f"The {what} at {url} failed: {message}"
        ) from None
    recorder.add_step(
        name=what,
        kind="external",
        status="success",
        started_at=started_at,
        latency_ms=int((time.monotonic() - started) * 1000),
        detail={"url": url, "status": response.status},
    )
    return response


RUNTIMES = {"llm": run_llm, "n8n": run_n8n, "webhook": run_webhook}
