"""The policy engine: one function decides, at trigger time and at every tool call.

``decide(agent, version, context)`` looks at the enabled policies that apply to the agent
(scope all, the agent itself, or one of its tags) in priority order (lower first) and
returns a ``Decision``: the outcome (allow, deny, rate_limited, delay, require_approval),
the reason and the deciding policy, when to try again, the model route, and a trace of
every policy looked at with its verdict. The first policy that stops the run decides;
routes, alerts and flags of the others are kept.

Policies are compiled into an in-memory index per process, keyed by scope; a version
token in Redis (renewed after commit by every policy change and agent tag change) tells
each process when to rebuild it — so a decision queries no database when nothing changed,
and never scans all policies. Counters (rate windows, running counts, spend) are atomic
Redis scripts (``policies.counters``); what a decision reserved is released if the decision
does not let the run go, and otherwise when the run ends (``release_reservations``).
"""

from __future__ import annotations

import heapq
import threading
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from django.utils import timezone

from policies import counters
from policies.types import all_types, policy_type, reservation_maker
from policies.types.base import QUEUE_RETRY as QUEUE_RETRY  # executions waits by it too
from policies.types.base import Compiled, Evaluation, PolicyRow, Reservation, StillGoing
from policies.types.base import Context as Context  # the engine's input: callers import it here

if TYPE_CHECKING:
    from agents.models import Agent, AgentVersion

VERSION_KEY = f"{counters.PREFIX}:index-version"

# Verdicts that end the evaluation, in the decision's words.
STOPPING = ("deny", "rate_limited", "delay", "require_approval")
# Contexts of content coming back: decided only by the types that screen content.
SCREENED = frozenset(("tool_result", "output"))


@dataclass
class Decision:
    outcome: str = "allow"  # allow | deny | rate_limited | delay | require_approval
    reason: str = ""
    policy_id: str | None = None
    policy_name: str | None = None
    policy_type: str | None = None
    delay_until: datetime | None = None
    route: dict[str, Any] | None = None
    payload: Any = None  # the payload as it may go on (redacted where a policy says so)
    approval: dict[str, Any] | None = None  # the deciding approval policy's rules
    alerts: list[str] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)
    # Kept waiting by a type whose wait the agent's later runs share (a concurrency slot):
    # they need not be decided again in the same pass.
    holds_agent: bool = False

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"

    def as_dict(self) -> dict[str, Any]:
        """The decision as the API and the trace show it (not what only the callers use:
        the reservations, holds_agent)."""
        data = asdict(self)
        data["delay_until"] = self.delay_until.isoformat() if self.delay_until else None
        data.pop("reservations")
        data.pop("holds_agent")
        return data


# --- the compiled index -----------------------------------------------------------------------


def compile_policy(row: PolicyRow) -> Compiled[Any]:
    """A policy row as the index holds it, compiled by its type (its evaluation resolved,
    what it needs ahead compiled) once per build rather than per decision."""
    return policy_type(row["policy_type"]).compile(row)


@dataclass
class PolicyIndex:
    version: bytes | None  # None only if the token vanished between writing and reading it
    everyone: list[Compiled[Any]]
    by_agent: dict[str, list[Compiled[Any]]]
    by_tag: dict[str, list[Compiled[Any]]]
    agent_tags: dict[str, tuple[str, ...]]

    def for_agent(self, agent_id: uuid.UUID | str) -> list[Compiled[Any]]:
        """Every enabled policy that applies, in priority order, without scanning the rest
        (a tag policy reaches an agent through several of its tags only once)."""
        key = str(agent_id)
        lists = [self.everyone, self.by_agent.get(key, [])]
        lists.extend(self.by_tag.get(tag, []) for tag in self.agent_tags.get(key, ()))
        applicable: list[Compiled[Any]] = []
        seen: set[str] = set()
        for policy in heapq.merge(*lists, key=lambda policy: policy.order):
            if policy.id not in seen:
                seen.add(policy.id)
                applicable.append(policy)
        return applicable


def build_index(version: bytes | None) -> PolicyIndex:
    """Every enabled policy compiled and filed by scope (three queries, whatever the count)."""
    from agents.models import Agent
    from policies.models import Policy

    everyone: list[Compiled[Any]] = []
    by_agent: dict[str, list[Compiled[Any]]] = {}
    by_tag: dict[str, list[Compiled[Any]]] = {}
    policies = (
        Policy.objects.filter(enabled=True)
        .prefetch_related("target_tags")
        .values(
            "id", "policy_name", "policy_type", "priority", "rules", "applies_to", "target_agent_id"
        )
    )
    tags_of: dict[Any, list[str]] = {}
    for policy_id, tag in Policy.target_tags.through.objects.filter(
        policy__enabled=True
    ).values_list("policy_id", "tag__name"):
        tags_of.setdefault(policy_id, []).append(tag)
    for row in policies:
        compiled = compile_policy(row)
        if row["applies_to"] == Policy.Scope.ALL:
            everyone.append(compiled)
        elif row["applies_to"] == Policy.Scope.AGENT and row["target_agent_id"]:
            by_agent.setdefault(str(row["target_agent_id"]), []).append(compiled)
        else:
            for tag in tags_of.get(row["id"], []):
                by_tag.setdefault(tag, []).append(compiled)
    agent_tags: dict[str, list[str]] = {}
    for agent_id, tag in Agent.tags.through.objects.values_list("agent_id", "tag__name"):
        agent_tags.setdefault(str(agent_id), []).append(tag)
    for bucket in (everyone, *by_agent.values(), *by_tag.values()):
        bucket.sort(key=lambda policy: policy.order)
    return PolicyIndex(
        version, everyone, by_agent, by_tag, {k: tuple(v) for k, v in agent_tags.items()}
    )


_index_lock = threading.Lock()
_index: PolicyIndex | None = None


def current_index() -> PolicyIndex:
    """This process's index, rebuilt only when the shared version moved. The version is a
    random token, not a count: a Redis that lost its data (restarted, flushed) gets a new
    one, so no process can mistake an old index for the current one."""
    global _index
    connection = counters.client()
    # The client does not decode responses: the token is bytes (None if the key is gone).
    version = cast("bytes | None", connection.get(VERSION_KEY))
    if version is None:
        connection.set(VERSION_KEY, uuid.uuid4().hex, nx=True)
        version = cast("bytes | None", connection.get(VERSION_KEY))
    index = _index
    if index is not None and index.version == version:
        return index
    with _index_lock:
        if _index is None or _index.version != version:
            _index = build_index(version)
        return _index


def index_changed() -> None:
    """Tell every process to rebuild (called after commit by policy and agent-tag changes)."""
    global _index
    counters.client().set(VERSION_KEY, uuid.uuid4().hex)
    _index = None


# --- the decision -----------------------------------------------------------------------------


def decide(
    *,
    agent: Agent,
    version: AgentVersion | None,
    context: Context,
    at: datetime | None = None,
    dry_run: bool = False,
    index: PolicyIndex | None = None,
) -> Decision:
    """What happens to this run or tool call now, and why (see the module docstring).
    ``dry_run``: counters are read, never changed. ``index``: decide on this index rather
    than the process's current one (``manage.py bench policies`` times the in-process part
    so)."""
    at = at or timezone.now()
    evaluation = Evaluation(agent, version, context, at, dry_run)
    decision = Decision(payload=context.payload)
    policies = (index or current_index()).for_agent(agent.pk)
    if context.kind in SCREENED:
        policies = [policy for policy in policies if policy.plugin.screens_content]
    try:
        for policy in policies:
            if decision.outcome != "allow":
                decision.trace.append(
                    _entry(policy, "skipped", f"decided by {decision.policy_name}")
                )
                continue
            plugin = policy.plugin
            if plugin.reads_redacted:
                evaluation.context = _with_payload(context, decision.payload)
            verdict = plugin.evaluate(evaluation, policy)
            decision.trace.append(_entry(policy, verdict.verdict, verdict.reason))
            if verdict.reservation:
                decision.reservations.append(verdict.reservation)
            if verdict.verdict == "route":
                decision.route = decision.route or verdict.route  # the first in order wins
            elif verdict.verdict == "redact":
                decision.payload = verdict.payload
            elif verdict.verdict == "alert":
                decision.alerts.append(f"{policy.name}: {verdict.reason}")
            elif verdict.verdict in STOPPING:
                decision.outcome = verdict.verdict
                decision.reason = f"{policy.name}: {verdict.reason}"
                decision.policy_id, decision.policy_name, decision.policy_type = (
                    policy.id,
                    policy.name,
                    policy.type,
                )
                decision.delay_until = verdict.delay_until
                decision.holds_agent = plugin.holds_agent and verdict.verdict == "delay"
                if verdict.verdict == "require_approval":
                    decision.approval = _approval_rules(policy, policies)
    except Exception:
        undo_reservations(decision.reservations)
        raise
    if not decision.allowed:
        undo_reservations(decision.reservations)
        decision.reservations = []
    if decision.allowed and not decision.reason:
        decision.reason = "allowed" if policies else "no policy applies"
    return decision


def _with_payload(context: Context, payload: Any) -> Context:
    """The context with the payload as redacted so far (itself when nothing was)."""
    if payload is context.payload:
        return context
    return Context(**{**asdict(context), "payload": payload})


def _entry(policy: Compiled[Any], verdict: str, reason: str) -> dict[str, Any]:
    """One trace line: which policy said what."""
    return {
        "policy_id": policy.id,
        "policy_name": policy.name,
        "policy_type": policy.type,
        "priority": policy.priority,
        "verdict": verdict,
        "reason": reason,
    }


def _approval_rules(deciding: Compiled[Any], policies: list[Compiled[Any]]) -> dict[str, Any]:
    """Who approves: the deciding policy when its type names approvers, else — when, say, a
    budget asked for an approval — the first applicable policy whose type does, else admins
    only."""
    if deciding.plugin.names_approvers:
        return {"policy_id": deciding.id, **deciding.rules}
    for policy in policies:
        if policy.plugin.names_approvers:
            return {"policy_id": policy.id, **policy.rules}
    return {
        "policy_id": deciding.id,
        "approvers": [],
        "required_approvals": 1,
        "auto_expire_hours": 24,
        "risk_threshold": "high",
        "on_expire": "reject",
        "on_reject": "cancel",
        "allow_self_approval": False,
    }


# --- reservations -----------------------------------------------------------------------------


def release_reservations(
    reservations: list[Reservation], actual_cost_usd: Decimal | None = None
) -> bool:
    """What a run held when it ends, given back as its type says: its concurrency slot is
    freed, and its budget reservation settled with its actual cost (with the reservation
    itself when the cost is unknown: an unpriced model is not free). Its rate-window entry
    stays: it ran. Safe to call twice. True when it freed something a waiting run may take
    (a slot): the caller looks at the agent's waiting runs now."""
    freed = False
    for reservation in reservations:
        if reservation_maker(reservation["kind"]).release(reservation, actual_cost_usd):
            freed = True
    return freed


def undo_reservations(reservations: list[Reservation]) -> None:
    """Take back everything a decision reserved for a run that will not happen (a later
    policy stopped it, or it was not created after all): its rate-window entry too."""
    for reservation in reservations:
        reservation_maker(reservation["kind"]).undo(reservation)


def reconcile_slots(still_going: StillGoing, grace_seconds: int = 60) -> int:
    """What runs that ended still hold (a worker that died before giving its concurrency
    slot back) is freed; returns how many. ``still_going(run_ids)`` says which of those
    runs are not over (policies does not know runs). What is younger than
    ``grace_seconds`` is left alone: its trigger may not have committed its run yet."""
    return sum(each.reconcile(still_going, grace_seconds) for each in all_types() if each.reconcile)
