"""Events that start runs.

An agent whose production version has an event trigger (``trigger: {type: event, events:
[names]}``) runs, with the event's payload as input, whenever one of those events is
published:

- by someone: ``POST /api/v1/events`` ``{name, payload}`` (``event_publish``) — every active
  subscribed agent the publisher may run is triggered (``trigger_source=event``), each
  through ``execution_trigger`` (input schema, policies, the ``Idempotency-Key`` per agent);
- by the control plane itself when a run ends: ``execution.succeeded:<agent name>`` and
  ``execution.failed:<agent name>`` (``event_chain``), whose payload carries the run's output
  or error, so that agent Y goes on from what agent X produced. A chained run records its
  ``parent``; a chain deeper than ``EVENT_CHAIN_MAX_DEPTH`` stops there (audited), so a loop
  (X → Y → X …) ends.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.db import transaction

from agents.models import Agent
from controlplane.access import Actor, can
from controlplane.audit import audit_record
from controlplane.errors import Forbidden, Invalid, ServiceError
from controlplane.models import AuditTarget
from controlplane.serializers import json_problem
from executions.lifecycle import Transition
from executions.models import Execution

if TYPE_CHECKING:
    from executions.trigger import TriggerResult

logger = logging.getLogger(__name__)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,99}$")
CHAIN = Actor.for_system("events")
S = Execution.Status


@dataclass
class Fanout:
    """What one published event did."""

    name: str
    triggered: list[tuple[Agent, Execution, bool]] = field(default_factory=list)
    refused: list[tuple[Agent, str, str]] = field(default_factory=list)  # agent, code, message
    not_permitted: int = 0  # subscribed agents the publisher may not run (not named)
    stopped: str = ""  # why nothing was triggered (the chain guard)


def subscribers(name: str) -> list[Agent]:
    """Active agents whose production version listens to ``name``."""
    candidates = (
        Agent.objects.filter(
            status=Agent.Status.ACTIVE,
            production_version__isnull=False,
            production_version__config__trigger__type="event",
        )
        .select_related("production_version")
        .order_by("name")
    )
    return [
        agent
        for agent in candidates
        if agent.production_version is not None  # the query asked for one
        and name in ((agent.production_version.config.get("trigger") or {}).get("events") or [])
    ]


def chain_depth(parent: Execution | None) -> int:
    """How many runs lead to a run started by ``parent`` (0: not chained)."""
    depth = 0
    current = parent
    while current is not None and depth <= settings.EVENT_CHAIN_MAX_DEPTH:
        depth += 1
        current = (
            Execution.objects.filter(pk=current.parent_id).only("pk", "parent_id").first()
            if current.parent_id
            else None
        )
    return depth


def event_publish(
    *,
    actor: Actor,
    name: object,
    payload: object,
    idempotency_key: str | None = None,
    parent: Execution | None = None,
) -> Fanout:
    """Trigger every active agent subscribed to ``name`` that the actor may run."""
    if not isinstance(name, str) or not NAME.match(name):
        raise Invalid.field(
            "name", "1 to 100 letters, digits and . _ : @ / -, starting with a letter or digit."
        )
    if not isinstance(payload, dict):
        raise Invalid.field("payload", "Must be a JSON object.", "type")
    problem = json_problem(payload)
    if problem:
        raise Invalid.field("payload", "Too deeply nested, or contains NUL characters.", problem)
    if actor.kind != "system" and not can(actor, "agents.execute_agent"):
        raise Forbidden("Your role may not start runs, so it may not publish events.")
    fanout = Fanout(name)
    depth = chain_depth(parent)
    if depth >= settings.EVENT_CHAIN_MAX_DEPTH:
        fanout.stopped = (
            f"the chain is {depth} runs deep (EVENT_CHAIN_MAX_DEPTH "
            f"{settings.EVENT_CHAIN_MAX_DEPTH}): nothing more is triggered"
        )
    for agent in [] if fanout.stopped else subscribers(name):
        if actor.kind != "system" and not can(actor, "agents.execute_agent", agent):
            fanout.not_permitted += 1
            continue
        key = None
        if idempotency_key:
            key = f"event:{idempotency_key}"[:200]
        elif parent is not None:  # a re-delivered chain event starts nothing twice
            key = f"chain:{parent.pk}:{name}"[:200]
        try:
            result = _trigger(actor, agent, payload, key, parent)
        except ServiceError as error:
            fanout.refused.append((agent, error.code, error.message))
            continue
        fanout.triggered.append((agent, result.execution, result.created))
    audit_record(
        actor=actor,
        action="event.published",
        target=AuditTarget("event", name, name),
        after={
            "triggered": [str(execution.pk) for _, execution, _ in fanout.triggered],
            "refused": [{"agent": agent.name, "code": code} for agent, code, _ in fanout.refused],
            "not_permitted": fanout.not_permitted,
            "parent": str(parent.pk) if parent else None,
            "stopped": fanout.stopped,
        },
    )
    return fanout


def _trigger(
    actor: Actor, agent: Agent, payload: dict[str, Any], key: str | None, parent: Execution | None
) -> TriggerResult:
    from executions.trigger import TriggerRequest, execution_trigger

    return execution_trigger(
        TriggerRequest(
            actor=actor,
            agent=agent,
            input=payload,
            source=Execution.Source.EVENT,
            idempotency_key=key,
            parent=parent,
        )
    )


# --- chains: a run's end is an event ----------------------------------------------------------

CHAIN_STATUSES: dict[str, str] = {S.SUCCESS: "succeeded", S.FAILED: "failed"}


def chain_event_name(agent_name: str, status: str) -> str:
    return f"execution.{CHAIN_STATUSES[status]}:{agent_name}"


def chain_when_ended(transition: Transition) -> None:
    """``run_moved``: a run that succeeded or failed is an event, published after commit."""
    execution = transition.execution
    if execution.status in CHAIN_STATUSES:
        transaction.on_commit(
            partial(chain_after_commit, execution.pk, execution.agent_id, execution.status)
        )


def chain_after_commit(execution_id: UUID, agent_id: UUID, status: str) -> None:
    """When a run ended: if an agent follows its agent's runs, publish the event on a worker
    (one query when nobody follows any run, the usual case). A failure here is logged: the
    run that ended is not affected."""
    try:
        _chain_if_followed(execution_id, agent_id, status)
    except Exception:
        logger.exception("could not publish the end of execution %s", execution_id)


def _chain_if_followed(execution_id: UUID, agent_id: UUID, status: str) -> None:
    from controlplane.celery import app as celery_app

    followed = (
        Agent.objects.filter(
            status=Agent.Status.ACTIVE, production_version__config__trigger__type="event"
        )
        .values_list("production_version__config__trigger__events", flat=True)
        .order_by()
    )
    names = {name for events in followed for name in events or []}
    if not any(name.startswith("execution.") for name in names):
        return
    agent_name = Agent.objects.filter(pk=agent_id).values_list("name", flat=True).first()
    if agent_name and chain_event_name(agent_name, status) in names:
        celery_app.send_task(
            "executions.tasks.event_chain", args=[str(execution_id)], queue="default"
        )


def event_chain(execution_id: UUID | str) -> Fanout | None:
    """Publish the end of a run (succeeded or failed) to the agents that follow it."""
    execution = Execution.objects.select_related("agent").filter(pk=execution_id).first()
    if execution is None or execution.status not in CHAIN_STATUSES:
        return None
    payload = {
        "event": chain_event_name(execution.agent.name, execution.status),
        "execution_id": str(execution.pk),
        "agent": execution.agent.name,
        "status": execution.status,
        "output": execution.output,
        "error_type": execution.error_type,
        "error_message": execution.error_message,
    }
    return event_publish(actor=CHAIN, name=payload["event"], payload=payload, parent=execution)
