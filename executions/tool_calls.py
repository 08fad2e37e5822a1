"""A run's tool calls: every tool call of every run goes through ``ToolProxy.call``.

In order: replay a call already made under the same idempotency key (never twice); check
the tool is offered, the version's capability and allowed destination (as the tool declares
them in ``integrations.tools.registry``), the tool's own config; ask the policy engine, with
the call's target as the tool reads it from the arguments; record the action *before* sending; decrypt the credential (audited)
and hand it to the tool, which neither the agent config nor the model ever sees; send,
retrying retryable errors with backoff and the same key; screen the result by the
content-safety policies that check ``tool_result`` (redacted, or withheld from the model:
indirect prompt injection arrives through tool results); record the step, the action's
outcome and an audit event. A refused or failed call, or a withheld result, goes back to the
model as a tool error with the reason.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from approvals.models import ApprovalRequest
from approvals.services import action_hash, approval_for_call
from controlplane.access import Actor
from controlplane.audit import audit_record
from controlplane.db import release_connection
from executions.models import Execution, ExecutionAction, ExecutionStep
from executions.recording import RunRecorder
from integrations.llm.base import ToolCall
from integrations.tools.base import Tool, ToolContext, ToolError, ToolRefused, ToolResult
from integrations.tools.registry import TOOLS, get_tool
from integrations.vault import Secret, credential_exists, credential_use
from policies.engine import Context, Decision, decide

PROXY = Actor.for_system("tool-proxy")
MAX_CONTENT_CHARS = 20_000


@dataclass(frozen=True)
class ToolOutcome:
    """What the model gets back."""

    content: str
    is_error: bool


class ApprovalRequired(Exception):
    """A policy wants a person to approve this tool call before it is sent: the run pauses
    (its checkpoint holds the call) until the approval comes."""

    def __init__(
        self, call: ToolCall, key: str, decision: Decision, requested_action: dict[str, Any]
    ) -> None:
        super().__init__(decision.reason)
        self.call = call
        self.key = key
        self.decision = decision
        self.requested_action = requested_action  # exactly what will run once approved


def _not_approved(approval: ApprovalRequest) -> str:
    """What the model is told when a person said no (or nobody said yes in time)."""
    if approval.status == ApprovalRequest.Status.REJECTED:
        return f"rejected by {approval.decided_by}" + (
            f": {approval.review_notes}" if approval.review_notes else ""
        )
    return f"not approved ({approval.status})"


def _as_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= MAX_CONTENT_CHARS else text[:MAX_CONTENT_CHARS] + " …[truncated]"


class ToolProxy:
    def __init__(
        self, execution: Execution, config: dict[str, Any], deadline: float, recorder: RunRecorder
    ) -> None:
        self.execution = execution
        self.recorder = recorder
        self.config = config
        self.deadline = deadline  # time.monotonic() at which the run times out
        self.offered = {tool["name"]: tool.get("config", {}) for tool in config.get("tools", [])}

    def call(self, call: ToolCall, key: str) -> ToolOutcome:
        existing = ExecutionAction.objects.filter(idempotency_key=key).first()
        if existing is not None:
            replay = self._replay(existing)
            if replay is not None:
                return replay
        try:
            tool, tool_config, call, approval = self._check(call, key)
        except ToolRefused as refused:
            return self._refused(call, key, refused.reason)
        action = existing or self._record_start(call, key, approved_by_person=approval is not None)
        if action is None:  # another runner recorded it between our read and write
            replay = self._replay(ExecutionAction.objects.get(idempotency_key=key))
            return replay or ToolOutcome("The action is in progress elsewhere.", True)
        return self._send(tool, tool_config, call, action)

    # --- before sending -------------------------------------------------------------------

    def _replay(self, action: ExecutionAction) -> ToolOutcome | None:
        """The outcome of a call made before (a resumed or re-run execution), or None when
        it should be sent (again, with the same key) now."""
        if action.status == ExecutionAction.Status.SUCCEEDED:
            self.recorder.log(
                f"{action.action}: already done, not repeated",
                key=action.idempotency_key,
            )
            return ToolOutcome(_as_text(action.result), False)
        if action.status in (ExecutionAction.Status.FAILED, ExecutionAction.Status.REFUSED):
            return ToolOutcome(action.error, True)
        # STARTED: a crash interrupted it; its outcome is unknown.
        if get_tool(action.action).idempotent_retry:
            self.recorder.log(
                f"{action.action}: interrupted, sent again with the same key",
                key=action.idempotency_key,
            )
            return None
        message = (
            f"{action.action} was interrupted by a worker failure; its outcome is unknown and it "
            "is not sent again (this service cannot deduplicate)."
        )
        ExecutionAction.objects.filter(pk=action.pk, status=ExecutionAction.Status.STARTED).update(
            status=ExecutionAction.Status.FAILED, error=message, finished_at=timezone.now()
        )
        return ToolOutcome(message, True)

    def _check(
        self, call: ToolCall, key: str
    ) -> tuple[Tool, dict[str, Any], ToolCall, ApprovalRequest | None]:
        """The tool, its config, the call as it may go (a safety policy may have redacted
        its arguments) and the approval it was given, if one was needed; ``ToolRefused`` or
        ``ApprovalRequired`` otherwise."""
        tool = TOOLS.get(call.name)
        if tool is None or call.name not in self.offered:
            raise ToolRefused(f"The tool {call.name!r} is not offered to this agent.")
        if not self.config.get("capabilities", {}).get(tool.capability):
            raise ToolRefused(f"This agent lacks the {tool.capability!r} capability.")
        if not self.config.get("allowed_destinations", {}).get(tool.destination):
            raise ToolRefused(f"Destination {tool.destination!r} is not allowed for this agent.")
        tool_config = self.offered[call.name]
        tool.authorize(call.arguments, tool_config)
        approval = approval_for_call(self.execution.pk, key)
        if approval is not None and approval.status != ApprovalRequest.Status.APPROVED:
            raise ToolRefused(_not_approved(approval))
        target = tool.target(call.arguments, tool_config)
        decision = decide(
            agent=self.execution.agent,
            version=self.execution.agent_version,
            context=Context(
                kind="tool_call",
                action=call.name,
                destination=tool.destination,
                target=target,
                payload=call.arguments,
                execution_id=str(self.execution.pk),
                approved=approval is not None,
            ),
        )
        requested = {
            "action": call.name,
            "destination": tool.destination,
            "target": target,
            "arguments": decision.payload,
        }
        if decision.outcome == "require_approval":
            raise ApprovalRequired(call, key, decision, requested)
        if not decision.allowed:
            raise ToolRefused(f"Refused by policy {decision.reason}")
        if approval is not None and action_hash(requested) != approval.action_hash:
            raise ToolRefused(
                "The call is not the one that was approved (its payload changed); not sent."
            )
        if decision.payload is not call.arguments:
            call = ToolCall(call.id, call.name, decision.payload)
        return tool, tool_config, call, approval

    def _record_start(
        self, call: ToolCall, key: str, *, approved_by_person: bool
    ) -> ExecutionAction | None:
        try:
            return ExecutionAction.objects.create(
                execution=self.execution,
                idempotency_key=key,
                action=call.name,
                status=ExecutionAction.Status.STARTED,
                arguments=call.arguments,
                auto_approved=not approved_by_person,
                started_at=timezone.now(),
            )
        except IntegrityError:
            return None

    def _credential(self, tool: Tool, tool_config: dict[str, Any]) -> Secret | None:
        name = tool_config.get("credential") or tool.kind
        if not tool_config.get("credential") and not credential_exists(name):
            return None
        return credential_use(
            name=name,
            purpose=f"tool:{tool.name}",
            actor=PROXY,
            agent_id=self.execution.agent_id,
            execution_id=self.execution.pk,
        )

    # --- sending --------------------------------------------------------------------------

    def _send(
        self, tool: Tool, tool_config: dict[str, Any], call: ToolCall, action: ExecutionAction
    ) -> ToolOutcome:
        started_at, started = timezone.now(), time.monotonic()
        try:
            credential = self._credential(tool, tool_config)
        except Exception as exc:  # a missing or undecryptable credential is a refusal
            return self._finish(
                call, action, started_at, started, error=f"Credential problem: {exc}", refused=True
            )
        max_attempts = settings.TOOL_MAX_ATTEMPTS
        for attempt in range(1, max_attempts + 1):
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                return self._finish(
                    call, action, started_at, started, error="The run's time is up."
                )
            context = ToolContext(
                execution_id=str(self.execution.pk),
                agent_name=self.execution.agent.name,
                config=tool_config,
                idempotency_key=action.idempotency_key,
                credential=credential,
                timeout=min(float(tool_config.get("timeout_seconds", 30)), remaining),
            )
            ExecutionAction.objects.filter(pk=action.pk).update(attempts=attempt)
            release_connection()  # don't hold a database connection while waiting on the network
            try:
                result = tool.run(context, call.arguments)
            except ToolRefused as refused:
                return self._finish(
                    call, action, started_at, started, error=refused.reason, refused=True
                )
            except ToolError as error:
                if error.retryable and attempt < max_attempts:
                    delay = min(
                        settings.TOOL_RETRY_MAX_SECONDS,
                        settings.TOOL_RETRY_BASE_SECONDS * 2 ** (attempt - 1),
                    )
                    delay *= random.uniform(0.5, 1.0)
                    self.recorder.log(
                        f"{call.name}: {error.message}; retrying in {delay:.1f}s",
                        "warn",
                        attempt=attempt,
                    )
                    time.sleep(max(0.0, min(delay, self.deadline - time.monotonic())))
                    continue
                return self._finish(call, action, started_at, started, error=error.message)
            return self._finish(call, action, started_at, started, result=result)
        return self._finish(
            call, action, started_at, started, error="No attempt left."
        )  # pragma: no cover

    def _finish(
        self,
        call: ToolCall,
        action: ExecutionAction,
        started_at: datetime,
        started: float,
        *,
        result: ToolResult | None = None,
        error: str = "",
        refused: bool = False,
    ) -> ToolOutcome:
        latency_ms = int((time.monotonic() - started) * 1000)
        withheld = ""
        if result is not None:
            status = ExecutionAction.Status.SUCCEEDED
            content, target, method = result.content, result.target, result.method
            content, withheld = self._screened(call, content)
            error = f"The result was withheld from the model: {withheld}" if withheld else ""
        else:
            status = ExecutionAction.Status.REFUSED if refused else ExecutionAction.Status.FAILED
            content, target, method = None, action.target, action.method
        ExecutionAction.objects.filter(pk=action.pk).update(
            status=status,
            result=content,
            error=error,
            target=target[:500],
            method=method[:100],
            finished_at=timezone.now(),
        )
        self._record(
            call,
            action.idempotency_key,
            status,
            target,
            method,
            latency_ms,
            started_at,
            error,
            result.detail if result is not None else {},
        )
        if result is None or withheld:
            return ToolOutcome(error, True)
        return ToolOutcome(_as_text(content), False)

    def _screened(self, call: ToolCall, content: Any) -> tuple[Any, str]:
        """The tool's result as the model may read it (redacted by the content-safety
        policies that check ``tool_result``), or None and why it is withheld."""
        tool = TOOLS[call.name]
        decision = decide(
            agent=self.execution.agent,
            version=self.execution.agent_version,
            context=Context(
                kind="tool_result",
                action=call.name,
                destination=tool.destination,
                payload=content,
                execution_id=str(self.execution.pk),
            ),
        )
        if not decision.allowed:
            self.recorder.log(f"{call.name}: result withheld by policy {decision.reason}", "warn")
            return None, f"policy {decision.reason}"
        if decision.payload is not content:
            self.recorder.log(f"{call.name}: result redacted before the model read it")
        return decision.payload, ""

    def _refused(self, call: ToolCall, key: str, reason: str) -> ToolOutcome:
        now = timezone.now()
        ExecutionAction.objects.get_or_create(
            idempotency_key=key,
            defaults={
                "execution": self.execution,
                "action": call.name,
                "status": ExecutionAction.Status.REFUSED,
                "arguments": call.arguments,
                "error": reason,
                "approved": False,
                "auto_approved": False,
                "started_at": now,
                "finished_at": now,
            },
        )
        self._record(call, key, ExecutionAction.Status.REFUSED, "", "", 0, now, reason, {})
        return ToolOutcome(f"Refused: {reason}", True)

    def _record(
        self,
        call: ToolCall,
        key: str,
        status: str,
        target: str,
        method: str,
        latency_ms: int,
        started_at: datetime,
        error: str,
        detail: dict[str, Any],
    ) -> None:
        step_statuses: dict[str, str] = {
            ExecutionAction.Status.SUCCEEDED: ExecutionStep.Status.SUCCESS,
            ExecutionAction.Status.REFUSED: ExecutionStep.Status.REFUSED,
        }
        step_status = step_statuses.get(status, ExecutionStep.Status.FAILED)
        self.recorder.add_step(
            name=call.name,
            kind=ExecutionStep.Kind.TOOL_CALL,
            status=step_status,
            started_at=started_at,
            latency_ms=latency_ms,
            detail={"target": target, "method": method, "key": key, "error": error, **detail},
        )
        audit_record(
            actor=PROXY,
            action=f"tool.{status}",
            target=self.execution.audit_target(f"{call.name} → {target}"),
            after={
                "action": call.name,
                "target": target,
                "method": method,
                "key": key,
                "error": error,
            },
        )
