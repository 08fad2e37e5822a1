"""Writes to executions: the one transition service, triggering, cancelling, the report of
an external runtime. The worker side (claim, the agent loop) is ``executions.runtime``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from jsonschema import Draft202012Validator, FormatChecker

from agents.models import Agent, AgentVersion
from controlplane.access import Actor, can
from controlplane.audit import audit_record
from controlplane.celery import app as celery_app
from controlplane.errors import Conflict, Forbidden, Invalid, ServiceError
from controlplane.serializers import json_problem
from executions.events import ExecutionChange, publish_after_commit
from executions.models import Execution
from executions.recording import record_external_report
from executions.rollups import day_start, forget_day

S = Execution.Status

# What each status may be reached from. Creation sets the first status directly.
ALLOWED_FROM: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.SCHEDULED, S.PENDING_APPROVAL, S.RUNNING}),
    S.RUNNING: frozenset({S.QUEUED, S.PENDING_APPROVAL}),
    S.PENDING_APPROVAL: frozenset({S.RUNNING}),
    # An approved run start is decided again: it may have to wait, or be refused after all.
    S.SCHEDULED: frozenset({S.PENDING_APPROVAL}),
    S.BLOCKED: frozenset({S.PENDING_APPROVAL}),
    S.RATE_LIMITED: frozenset({S.PENDING_APPROVAL}),
    S.SUCCESS: frozenset({S.RUNNING}),
    S.FAILED: frozenset({S.RUNNING, S.QUEUED}),
    S.TIMED_OUT: frozenset({S.RUNNING}),
    S.CANCELLED: frozenset({S.QUEUED, S.SCHEDULED, S.PENDING_APPROVAL, S.RUNNING}),
    S.EXPIRED: frozenset({S.PENDING_APPROVAL}),
}

SYSTEM = Actor.for_system("executions")


def execution_transition(
    *,
    execution_id: Any,
    to: str,
    actor: Actor = SYSTEM,
    expect: Iterable[str] | None = None,
    attempt: int | None = None,
    fields: dict[str, Any] | Callable[[Execution], dict[str, Any]] | None = None,
    unless_cancel_requested: bool = False,
    related: tuple[str, ...] = (),
    reason: str = "",
) -> Execution | None:
    """Move one execution to ``to`` if it is in one of ``expect`` (default: every status
    ``to`` may be reached from), still at ``attempt`` if given, and not asked to cancel if
    ``unless_cancel_requested``. The row is locked, so of two racing callers exactly one
    succeeds; the loser gets None. Saves ``fields`` (or what ``fields(locked row)`` returns)
    with the status, writes the audit event and publishes the change after commit. The only
    writer of ``Execution.status``."""
    allowed = ALLOWED_FROM[to] if expect is None else frozenset(expect) & ALLOWED_FROM[to]
    with transaction.atomic():
        rows = (
            Execution.objects.select_for_update(of=("self",))
            .filter(pk=execution_id, status__in=allowed)
            .order_by()
        )
        if attempt is not None:
            rows = rows.filter(attempt=attempt)
        if unless_cancel_requested:
            rows = rows.filter(cancel_requested=False)
        if related:
            rows = rows.select_related(*related)
        execution = next(iter(rows), None)
        if execution is None:
            return None
        values = dict(fields(execution) if callable(fields) else fields or {})
        if to in Execution.TERMINAL:
            values.setdefault("completed_at", timezone.now())
        previous = execution.status
        execution.status = to
        for name, value in values.items():
            setattr(execution, name, value)
        execution.save(update_fields=["status", "updated_at", *values])
        if execution.created_at < day_start(timezone.now().astimezone(UTC).date()):
            forget_day(execution.created_at)  # the dashboard's sums of a closed day
        after: dict[str, Any] = {"status": to, "attempt": execution.attempt}
        if reason:
            after["reason"] = reason
        if execution.error_type and to in (S.FAILED, S.TIMED_OUT):
            after["error_type"] = execution.error_type
        audit_record(
            actor=actor,
            action=f"execution.{to}",
            target_type="execution",
            target_id=execution.pk,
            target_repr=f"{execution.agent_id}",
            agent_id=execution.agent_id,
            before={"status": previous},
            after=after,
        )
        publish_after_commit(
            ExecutionChange(
                str(execution.pk), str(execution.agent_id), to, previous, execution.attempt
            )
        )
        if to in Execution.TERMINAL and execution.trigger_source == Execution.Source.CRON:
            from schedules.services import cron_run_ended

            cron_run_ended(execution, to)
        if to in Execution.TERMINAL and execution.policy_reservations:
            transaction.on_commit(partial(_release, execution.pk))
        if to in (S.SUCCESS, S.FAILED):
            from executions.event_triggers import chain_after_commit

            transaction.on_commit(partial(chain_after_commit, execution.pk, execution.agent_id, to))
    return execution


def _release(execution_id: Any) -> None:
    """After a run ended: free its concurrency slot and settle its budget with its actual
    cost; a run waiting for that slot is looked at now rather than at the next sweep."""
    from policies.engine import release_reservations

    execution = Execution.objects.only("agent_id", "policy_reservations", "estimated_cost_usd").get(
        pk=execution_id
    )
    if release_reservations(execution.policy_reservations, execution.estimated_cost_usd):
        celery_app.send_task(
            "executions.tasks.maintenance_dispatch_due",
            kwargs={"agent_id": str(execution.agent_id)},
            queue="maintenance",
        )


RUN_TASK = "executions.tasks.execution_run"


def _ring(execution_id: str, attempt: int) -> None:
    # By name: a web process that triggers runs need not import the runtime (and its SDKs).
    celery_app.send_task(RUN_TASK, args=[execution_id, attempt], queue="executions")


def enqueue_after_commit(execution: Execution) -> None:
    """Ring the doorbell once the row is committed: a worker never sees an uncommitted run."""
    transaction.on_commit(partial(_ring, str(execution.pk), execution.attempt))


# --- triggering -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TriggerResult:
    execution: Execution
    created: bool  # False: the Idempotency-Key named an existing execution


_FORMATS = FormatChecker()
# Compiled input validators by config hash: the hash names the content, so an entry never
# goes stale (a cache of read-mostly data, per process).
_VALIDATORS: dict[str, Draft202012Validator] = {}


def validate_input(version: AgentVersion, value: Any) -> None:
    """The version's ``input_schema`` (JSON Schema, formats checked): 400 listing every
    failing path."""
    validator = _VALIDATORS.get(version.config_hash)
    if validator is None:
        if len(_VALIDATORS) >= 1024:
            _VALIDATORS.clear()
        schema = version.config.get("input_schema") or {"type": "object"}
        validator = _VALIDATORS[version.config_hash] = Draft202012Validator(
            schema, format_checker=_FORMATS
        )
    errors = sorted(validator.iter_errors(value), key=lambda error: list(error.absolute_path))
    if not errors:
        return
    problems = [
        {
            "field": "input"
            + "".join(
                f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
            ),
            "message": error.message,
            "code": str(error.validator),
        }
        for error in errors[:50]
    ]
    raise Invalid(
        "The input does not match the agent's input schema: "
        + "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5]),
        code="invalid_input",
        details={"validationErrors": problems},
    )


def _version_to_run(agent: Agent, version: str | None) -> tuple[AgentVersion, bool]:
    """The production version (default) or, when named, the staging version."""
    if version is None or (
        agent.production_version and agent.production_version.version == version
    ):
        if agent.status != Agent.Status.ACTIVE:
            raise Conflict(
                f"Agent {agent.name!r} is {agent.status}: only an active agent runs.",
                code="agent_not_runnable",
                details={"status": agent.status},
            )
        if agent.production_version is None:
            raise Conflict(
                f"Agent {agent.name!r} has no production version.", code="no_production_version"
            )
        return agent.production_version, False
    staging = agent.staging_version
    if staging is None or staging.version != version:
        raise Conflict(
            f"Version {version} of {agent.name!r} is neither the production nor the staging "
            "version: only those run.",
            code="version_not_runnable",
            details={"version": version},
        )
    if agent.status in (Agent.Status.DEPRECATED, Agent.Status.ARCHIVED):
        raise Conflict(
            f"Agent {agent.name!r} is {agent.status}.",
            code="agent_not_runnable",
            details={"status": agent.status},
        )
    return staging, True


def _fingerprint(version: AgentVersion, value: Any) -> str:
    canonical = json.dumps({"version": version.version, "input": value}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


# The decision's outcome → the status the run starts in.
OUTCOME_STATUS = {
    "allow": S.QUEUED,
    "deny": S.BLOCKED,
    "rate_limited": S.RATE_LIMITED,
    "delay": S.SCHEDULED,
    "require_approval": S.PENDING_APPROVAL,
}


def decision_fields(decision: Any) -> dict[str, Any]:
    """The execution fields a trigger-time decision sets (also when a scheduled run is
    looked at again)."""
    status = OUTCOME_STATUS[decision.outcome]
    fields: dict[str, Any] = {
        "policy_trace": decision.trace,
        "policy_reservations": decision.reservations,
        "not_before": decision.delay_until,
    }
    if decision.route:
        fields["routing"] = decision.route
        fields["llm_provider"] = decision.route["provider"]
        fields["llm_model"] = decision.route["model"]
    if status in (S.BLOCKED, S.RATE_LIMITED):
        fields["error_type"] = "policy_" + decision.outcome
        fields["error_message"] = decision.reason
    if status == S.QUEUED:
        fields["enqueued_at"] = timezone.now()
    return fields


def decide_again(execution: Execution, *, approved: bool, at: Any = None) -> Any:
    """The engine's decision for a run that waited to start (its time came, a slot freed, a
    person approved it), as at its trigger."""
    from policies.engine import Context, decide

    return decide(
        agent=execution.agent,
        version=execution.agent_version,
        context=Context(
            kind="trigger",
            payload=execution.input,
            execution_id=str(execution.pk),
            actor_user_id=execution.triggered_by_id,
            approved=approved,
        ),
        at=at,
    )


def execution_move_by_decision(
    execution: Execution, decision: Any, *, actor: Actor, expect: set[str], reason: str
) -> Execution | None:
    """Move a waiting run where ``decision`` says (queued and enqueued after commit, or
    scheduled, or refused with the reason). If the run moved meanwhile (a cancel), what the
    decision reserved is given back and None returned."""
    from policies.engine import undo_reservations

    to = OUTCOME_STATUS[decision.outcome]
    try:
        moved = execution_transition(
            execution_id=execution.pk,
            to=to,
            actor=actor,
            expect=expect,
            fields=decision_fields(decision),
            reason=reason if to == S.QUEUED else decision.reason,
        )
    except BaseException:
        undo_reservations(decision.reservations)
        raise
    if moved is None:
        undo_reservations(decision.reservations)
    elif to == S.QUEUED:
        enqueue_after_commit(moved)
    return moved


def execution_trigger(
    *,
    actor: Actor,
    agent: Agent,
    input: Any,
    source: str,
    version: str | None = None,
    idempotency_key: str | None = None,
    parent: Execution | None = None,
    complexity: str | None = None,
) -> TriggerResult:
    """Start a run: check the agent may run, validate the input, honour the idempotency
    key, ask the policy engine, create the execution in the status the decision says
    (queued, scheduled, pending_approval, or refused: blocked / rate_limited, recorded with
    the reason) and, if queued, enqueue it after commit.

    System actors (the webhook endpoint after its signature check, beat, events) are trusted;
    users and API keys need ``execute_agent`` on the agent.
    """
    from policies.engine import Context, decide, undo_reservations

    if actor.kind != "system" and not can(actor, "agents.execute_agent", agent):
        raise Forbidden("You may not run this agent.")
    problem = json_problem(input)
    if problem:
        raise Invalid.field("input", "Too deeply nested, or contains NUL characters.", problem)
    agent_version, is_staging = _version_to_run(agent, version)
    if is_staging and actor.kind != "system" and not can(actor, "agents.change_agent", agent):
        raise Forbidden("Running the staging version needs the right to change the agent.")
    validate_input(agent_version, input)
    fingerprint = _fingerprint(agent_version, input)
    if idempotency_key:
        existing = _existing_by_key(agent, idempotency_key, fingerprint)
        if existing is not None:
            return TriggerResult(existing, created=False)

    execution_id = uuid.uuid4()
    decision = decide(
        agent=agent,
        version=agent_version,
        context=Context(
            kind="trigger",
            payload=input,
            complexity_hint=complexity,
            execution_id=str(execution_id),
            actor_user_id=getattr(actor.user, "pk", None),
        ),
    )
    llm = agent_version.config.get("llm") or {}
    status = OUTCOME_STATUS[decision.outcome]
    execution = Execution(
        id=execution_id,
        agent=agent,
        agent_version=agent_version,
        is_staging=is_staging,
        trigger_source=source,
        trigger_user=actor.user.get_username() if actor.user else actor.label,
        triggered_by=actor.user,
        status=status,
        input=decision.payload,
        idempotency_key=idempotency_key or None,
        request_fingerprint=fingerprint,
        estimated_cost_usd=0,
        parent=parent,
        trace_id=uuid.uuid4().hex,
        completed_at=timezone.now() if status in Execution.TERMINAL else None,
        **{
            "llm_provider": llm.get("provider", agent_version.config.get("runtime", "")),
            "llm_model": llm.get("model", ""),
            **decision_fields(decision),  # a routing policy's model replaces the version's
        },
    )
    try:
        with transaction.atomic():
            execution.save(force_insert=True)
            after = {
                "status": status,
                "version": agent_version.version,
                "source": source,
                "staging": is_staging,
            }
            if decision.policy_name:
                after["policy"] = decision.policy_name
                after["reason"] = decision.reason
            audit_record(
                actor=actor,
                action="execution.created",
                target_type="execution",
                target_id=execution.pk,
                target_repr=agent.name,
                agent_id=agent.pk,
                after=after,
            )
            for alert in decision.alerts:
                audit_record(
                    actor=actor,
                    action="policy.alert",
                    target_type="execution",
                    target_id=execution.pk,
                    target_repr=agent.name,
                    agent_id=agent.pk,
                    after={"alert": alert},
                )
            if status == S.PENDING_APPROVAL:
                from approvals.services import approval_open

                approval_open(
                    execution=execution,
                    decision=decision,
                    action="execute",
                    call_key="execute",
                    requested_action={
                        "action": "execute",
                        "agent": agent.name,
                        "version": agent_version.version,
                        "input": decision.payload,
                    },
                )
            publish_after_commit(
                ExecutionChange(str(execution.pk), str(agent.pk), execution.status, None, 1)
            )
            if status == S.QUEUED:
                enqueue_after_commit(execution)
    except IntegrityError:
        undo_reservations(decision.reservations)
        if not idempotency_key:
            raise
        # A concurrent request with the same key won the insert: answer with its execution.
        existing = _existing_by_key(agent, idempotency_key, fingerprint)
        if existing is None:
            raise
        return TriggerResult(existing, created=False)
    except BaseException:
        undo_reservations(decision.reservations)
        raise
    return TriggerResult(execution, created=True)


def _existing_by_key(agent: Agent, key: str, fingerprint: str) -> Execution | None:
    existing = Execution.objects.filter(agent=agent, idempotency_key=key).first()
    if existing is not None and existing.request_fingerprint != fingerprint:
        raise Conflict(
            "This Idempotency-Key was used for a different request (other input or version).",
            code="idempotency_key_reused",
            details={"execution_id": str(existing.pk)},
        )
    return existing


# --- cancelling -------------------------------------------------------------------------------


def execution_can_cancel(actor: Actor, execution: Execution) -> bool:
    """Cancelling takes the role's right to cancel and the right to run that agent."""
    return can(actor, "executions.cancel_execution") and can(
        actor, "agents.execute_agent", execution.agent
    )


def execution_cancel(*, actor: Actor, execution: Execution) -> Execution:
    """Not started yet: cancelled at once. Running: asked to stop; the loop stops before its
    next step. Finished: 409."""
    if not execution_can_cancel(actor, execution):
        raise Forbidden("You may not cancel runs of this agent.")
    from approvals.services import approval_cancel_for_execution

    waiting = (S.QUEUED, S.SCHEDULED, S.PENDING_APPROVAL)
    with transaction.atomic():
        cancelled = execution_transition(
            execution_id=execution.pk,
            to=S.CANCELLED,
            actor=actor,
            expect=waiting,
            reason="cancelled before it ran",
        )
        if cancelled is not None:
            approval_cancel_for_execution(execution_id=execution.pk, actor=actor)
    if cancelled is not None:
        return cancelled
    with transaction.atomic():
        asked = Execution.objects.filter(pk=execution.pk, status=S.RUNNING).update(
            cancel_requested=True, updated_at=timezone.now()
        )
        if asked:
            audit_record(
                actor=actor,
                action="execution.cancel_requested",
                target_type="execution",
                target_id=execution.pk,
                target_repr=execution.agent.name,
                agent_id=execution.agent_id,
            )
    execution.refresh_from_db()
    if not asked and execution.is_terminal:
        raise Conflict(
            f"The execution is already {execution.status}.",
            code="execution_finished",
            details={"status": execution.status},
        )
    return execution


# --- the report of an external runtime (n8n) --------------------------------------------------


def callback_token_new() -> tuple[str, str]:
    """A per-execution token for the external runtime's report, and its stored hash."""
    token = secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


def callback_token_valid(execution: Execution, token: str) -> bool:
    if not execution.callback_token_hash or not token:
        return False
    digest = hashlib.sha256(token.encode()).hexdigest()
    return constant_time_compare(digest, execution.callback_token_hash)


def execution_report(*, execution: Execution, data: dict[str, Any]) -> Execution:
    """Record what the workflow did and finish the run (the caller checked the token)."""
    with transaction.atomic():
        locked = Execution.objects.select_for_update(of=("self",)).get(pk=execution.pk)
        if locked.status != S.RUNNING or not locked.awaiting_report:
            raise Conflict(
                f"The execution is {locked.status}: it takes no report now.",
                code="execution_finished" if locked.is_terminal else "not_awaiting_report",
                details={"status": locked.status},
            )
        fields = record_external_report(locked, data)
        finished = execution_transition(
            execution_id=locked.pk,
            to=S.SUCCESS if data["status"] == "success" else S.FAILED,
            actor=Actor.for_system("n8n"),
            expect={S.RUNNING},
            fields={**fields, "awaiting_report": False},
            reason="reported by the workflow",
        )
    if finished is None:  # pragma: no cover - the row is locked above
        raise ServiceError("The execution changed while the report was recorded.")
    return finished
