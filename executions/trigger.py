"""Starting a run: one request shape for every trigger source, one service in named steps.

Every way a run starts — the API (``/executions/trigger``, ``/agents/{ref}/execute``), the
console's Run form, the admin's action, ``manage.py trigger_agent``, a signed webhook, a
published event, a chain (another run's end), a cron fire — is a thin entry that builds a
``TriggerRequest`` and calls ``execution_trigger``, which:

1. authorizes: users and API keys need ``execute_agent`` on the agent; system actors (the
   webhook endpoint after its signature check, beat, events) are trusted; the input must be
   storable JSON;
2. picks the version: the production version, or the staging version when it is named (that
   takes the right to change the agent);
3. validates the input against the version's ``input_schema``;
4. honours the ``Idempotency-Key`` (the same key for the same agent answers with the first
   run; reused for another request, 409);
5. asks the policy engine;
6. creates the run in the status the decision says — queued, scheduled, pending_approval (its
   approval request opened in the same transaction) or refused (blocked / rate_limited,
   recorded with the reason) — audited, and published after commit;
7. enqueues it after commit when it is queued.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.models import Agent, AgentVersion
from controlplane.access import Actor, can
from controlplane.audit import audit_record
from controlplane.errors import Conflict, Forbidden, Invalid
from controlplane.jsonschemas import SafeValidator
from controlplane.live import RunChanged, publish_after_commit
from controlplane.serializers import JSON_PROBLEMS, json_problem
from executions.approval_flow import approval_hold
from executions.models import Execution
from executions.services import OUTCOME_STATUS, decision_fields, enqueue_after_commit
from policies.engine import Context, Decision, decide, undo_reservations

S = Execution.Status


@dataclass(frozen=True)
class TriggerRequest:
    """What a trigger source asks for: who, which agent, with what input, from where."""

    actor: Actor
    agent: Agent
    input: Any  # a JSON value; the version's input_schema says which
    source: str  # Execution.Source
    version: str | None = None  # None: production; else production's or staging's version
    idempotency_key: str | None = None
    parent: Execution | None = None  # the run whose end started this one (a chain)
    complexity: str | None = None  # a hint for model routing


@dataclass(frozen=True)
class TriggerResult:
    execution: Execution
    created: bool  # False: the Idempotency-Key named an existing execution


def execution_trigger(request: TriggerRequest) -> TriggerResult:
    """Start a run (the module docstring lists the steps)."""
    _authorize(request)
    version, is_staging = _pick_version(request)
    validate_input(version, request.input)
    fingerprint = _fingerprint(version, request.input)
    if request.idempotency_key:
        existing = _existing_by_key(request.agent, request.idempotency_key, fingerprint)
        if existing is not None:
            return TriggerResult(existing, created=False)
    execution = _new_execution(request, version, is_staging, fingerprint)
    decision = _decide(request, version, execution)
    try:
        _create(request, execution, decision)
    except IntegrityError:
        undo_reservations(decision.reservations)
        if not request.idempotency_key:
            raise
        # A concurrent request with the same key won the insert: answer with its execution.
        existing = _existing_by_key(request.agent, request.idempotency_key, fingerprint)
        if existing is None:
            raise
        return TriggerResult(existing, created=False)
    except BaseException:
        undo_reservations(decision.reservations)
        raise
    return TriggerResult(execution, created=True)


# --- the steps -------------------------------------------------------------------------------


def _authorize(request: TriggerRequest) -> None:
    actor = request.actor
    if actor.kind != "system" and not can(actor, "agents.execute_agent", request.agent):
        raise Forbidden("You may not run this agent.")
    problem = json_problem(request.input)
    if problem:
        raise Invalid.field("input", JSON_PROBLEMS[problem], problem)


def _pick_version(request: TriggerRequest) -> tuple[AgentVersion, bool]:
    """The production version (default) or, when named, the staging version."""
    agent, version = request.agent, request.version
    production = agent.production_version
    if version is None or (production and production.version == version):
        if agent.status != Agent.Status.ACTIVE:
            raise Conflict(
                f"Agent {agent.name!r} is {agent.status}: only an active agent runs.",
                code="agent_not_runnable",
                details={"status": agent.status},
            )
        if production is None:
            raise Conflict(
                f"Agent {agent.name!r} has no production version.", code="no_production_version"
            )
        return production, False
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
    actor = request.actor
    if actor.kind != "system" and not can(actor, "agents.change_agent", agent):
        raise Forbidden("Running the staging version needs the right to change the agent.")
    return staging, True


# Compiled input validators by config hash: the hash names the content, so an entry never
# goes stale (a cache of read-mostly data, per process).
_VALIDATORS: dict[str, SafeValidator] = {}


def validate_input(version: AgentVersion, value: Any) -> None:
    """The version's ``input_schema`` (JSON Schema, formats checked): 400 listing every
    failing path."""
    validator = _VALIDATORS.get(version.config_hash)
    if validator is None:
        if len(_VALIDATORS) >= 1024:
            _VALIDATORS.clear()
        schema = version.config.get("input_schema") or {"type": "object"}
        validator = _VALIDATORS[version.config_hash] = SafeValidator(schema)
    errors = validator.iter_errors(value)
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


def _fingerprint(version: AgentVersion, value: Any) -> str:
    canonical = json.dumps({"version": version.version, "input": value}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _existing_by_key(agent: Agent, key: str, fingerprint: str) -> Execution | None:
    existing = Execution.objects.filter(agent=agent, idempotency_key=key).first()
    if existing is not None and existing.request_fingerprint != fingerprint:
        raise Conflict(
            "This Idempotency-Key was used for a different request (other input or version).",
            code="idempotency_key_reused",
            details={"execution_id": str(existing.pk)},
        )
    return existing


def _new_execution(
    request: TriggerRequest, version: AgentVersion, is_staging: bool, fingerprint: str
) -> Execution:
    """The run as it will be stored, before the decision fills in its status and fields."""
    actor = request.actor
    llm = version.config.get("llm") or {}
    return Execution(
        id=uuid.uuid4(),
        agent=request.agent,
        agent_version=version,
        is_staging=is_staging,
        trigger_source=request.source,
        trigger_user=actor.user.get_username() if actor.user else actor.label,
        triggered_by=actor.user,
        input=request.input,
        idempotency_key=request.idempotency_key or None,
        request_fingerprint=fingerprint,
        estimated_cost_usd=0,
        parent=request.parent,
        trace_id=uuid.uuid4().hex,
        llm_provider=llm.get("provider", version.config.get("runtime", "")),
        llm_model=llm.get("model", ""),
    )


def _decide(request: TriggerRequest, version: AgentVersion, execution: Execution) -> Decision:
    """The engine's decision; its outcome and fields (a routing policy's model replaces the
    version's, a safety policy may have redacted the input) are set on the run."""
    actor = request.actor
    decision = decide(
        agent=request.agent,
        version=version,
        context=Context(
            kind="trigger",
            payload=request.input,
            complexity_hint=request.complexity,
            execution_id=str(execution.pk),
            actor_user_id=getattr(actor.user, "pk", None),
        ),
    )
    execution.status = OUTCOME_STATUS[decision.outcome]
    execution.input = decision.payload
    if execution.status in Execution.TERMINAL:
        execution.completed_at = timezone.now()
    for name, value in decision_fields(decision).items():
        setattr(execution, name, value)
    return decision


def _create(request: TriggerRequest, execution: Execution, decision: Decision) -> None:
    """Insert the run with its audit events (and its approval request when it waits for
    one); publish it and, when queued, enqueue it after commit."""
    actor, agent, status = request.actor, request.agent, execution.status
    with transaction.atomic():
        execution.save(force_insert=True)
        after = {
            "status": status,
            "version": execution.agent_version.version,
            "source": request.source,
            "staging": execution.is_staging,
        }
        if decision.policy_name:
            after["policy"] = decision.policy_name
            after["reason"] = decision.reason
        events = [("execution.created", after)]
        events += [("policy.alert", {"alert": alert}) for alert in decision.alerts]
        for action, data in events:
            audit_record(
                actor=actor,
                action=action,
                target=execution.audit_target(agent.name),
                after=data,
            )
        if status == S.PENDING_APPROVAL:
            approval_hold(
                execution=execution,
                decision=decision,
                action="execute",
                call_key="execute",
                requested_action={
                    "action": "execute",
                    "agent": agent.name,
                    "version": execution.agent_version.version,
                    "input": decision.payload,
                },
            )
        publish_after_commit(RunChanged(execution.pk, agent.pk, status))
        if status == S.QUEUED:
            enqueue_after_commit(execution)
