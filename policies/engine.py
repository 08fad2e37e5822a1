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
import json
import re
import threading
import uuid
import zoneinfo
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django.utils import timezone

from policies import counters, safety

VERSION_KEY = f"{counters.PREFIX}:index-version"
DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
QUEUE_RETRY = timedelta(seconds=5)  # a run waiting for a concurrency slot is looked at again
MICRO = Decimal(1_000_000)

# Verdicts that end the evaluation, in the decision's words.
STOPPING = ("deny", "rate_limited", "delay", "require_approval")


@dataclass(frozen=True)
class Context:
    """What is being decided. At trigger time ``payload`` is the input; at a tool call it is
    the tool's arguments, ``action`` the tool action, ``destination`` its kind of place
    (email, slack, external_api, webhook) and ``target`` where exactly (channel, recipients,
    URL)."""

    kind: str  # "trigger" | "tool_call"
    action: str = "execute"
    destination: str | None = None
    target: str | list[str] = ""
    payload: Any = None
    complexity_hint: str | None = None
    execution_id: str | None = None
    actor_user_id: int | None = None
    estimated_cost_usd: Decimal | None = None
    # A person approved this run or call: approval policies pass, and a budget set to ask
    # for approval lets it through (and still counts its cost).
    approved: bool = False


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
    reservations: list[dict[str, Any]] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["delay_until"] = self.delay_until.isoformat() if self.delay_until else None
        data.pop("reservations")
        return data


# --- the compiled index -----------------------------------------------------------------------


@dataclass(frozen=True)
class Compiled:
    id: str
    name: str
    type: str
    priority: int
    rules: dict[str, Any]
    zone: zoneinfo.ZoneInfo | None = None
    patterns: tuple[tuple[str, re.Pattern[str], str], ...] = ()

    @property
    def order(self) -> tuple[int, str]:
        return (self.priority, self.name)


def _compile(row: dict[str, Any]) -> Compiled:
    rules = row["rules"]
    zone = zoneinfo.ZoneInfo(rules["timezone"]) if "timezone" in rules else None
    patterns = tuple(
        (item["name"], re.compile(item["pattern"]), item["action"])
        for item in rules.get("custom_patterns", [])
    )
    return Compiled(
        str(row["id"]),
        row["policy_name"],
        row["policy_type"],
        row["priority"],
        rules,
        zone,
        patterns,
    )


@dataclass
class PolicyIndex:
    version: bytes
    everyone: list[Compiled]
    by_agent: dict[str, list[Compiled]]
    by_tag: dict[str, list[Compiled]]
    agent_tags: dict[str, tuple[str, ...]]

    def for_agent(self, agent_id: Any) -> list[Compiled]:
        """Every enabled policy that applies, in priority order, without scanning the rest
        (a tag policy reaches an agent through several of its tags only once)."""
        key = str(agent_id)
        lists = [self.everyone, self.by_agent.get(key, [])]
        lists.extend(self.by_tag.get(tag, []) for tag in self.agent_tags.get(key, ()))
        applicable: list[Compiled] = []
        seen: set[str] = set()
        for policy in heapq.merge(*lists, key=lambda policy: policy.order):
            if policy.id not in seen:
                seen.add(policy.id)
                applicable.append(policy)
        return applicable


def build_index(version: bytes) -> PolicyIndex:
    from agents.models import Agent
    from policies.models import Policy

    everyone: list[Compiled] = []
    by_agent: dict[str, list[Compiled]] = {}
    by_tag: dict[str, list[Compiled]] = {}
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
        compiled = _compile(row)
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
    version = connection.get(VERSION_KEY)
    if version is None:
        connection.set(VERSION_KEY, uuid.uuid4().hex, nx=True)
        version = connection.get(VERSION_KEY)
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


# --- evaluators -------------------------------------------------------------------------------


@dataclass
class Verdict:
    verdict: str  # pass | deny | rate_limited | delay | require_approval | route | alert | flag | redact | not_applicable
    reason: str = ""
    delay_until: datetime | None = None
    route: dict[str, Any] | None = None
    payload: Any = None
    reservation: dict[str, Any] | None = None


class Evaluation:
    """One decision in progress: the agent, the context, the time, dry or not."""

    def __init__(self, agent: Any, version: Any, context: Context, at: datetime, dry: bool) -> None:
        self.agent = agent
        self.version = version
        self.context = context
        self.at = at
        self.dry = dry
        self.member = context.execution_id or uuid.uuid4().hex
        self._text: tuple[Any, str] | None = None

    def payload_text(self) -> str:
        """The payload as the safety checks read it, serialised once per payload."""
        payload = self.context.payload
        if self._text is None or self._text[0] is not payload:
            self._text = (payload, safety.as_text(payload))
        return self._text[1]

    def key(self, policy: Compiled, what: str) -> str:
        return f"{counters.PREFIX}:{policy.id}:{what}:{self.agent.pk}"

    # each returns a Verdict for one policy

    def rate_limit(self, policy: Compiled) -> Verdict:
        if self.context.kind != "trigger":
            return Verdict("not_applicable", "rate limits count runs")
        rules = policy.rules
        key = self.key(policy, "rate")
        check = counters.rate_acquire(
            key,
            limit=rules["max_executions"],
            window_ms=rules["window_minutes"] * 60_000,
            member=self.member,
            dry=self.dry,
        )
        if check.admitted:
            return Verdict(
                "pass",
                f"{check.count} of {rules['max_executions']} in {rules['window_minutes']} min",
                reservation=None
                if self.dry
                else {"kind": "rate", "key": key, "member": self.member},
            )
        reason = f"{rules['max_executions']} runs per {rules['window_minutes']} min reached"
        if rules["action_on_violation"] == "queue":
            until = timezone.now() + timedelta(milliseconds=check.free_in_ms)
            return Verdict("delay", f"{reason}; queued until the window frees", delay_until=until)
        return Verdict("rate_limited", reason)

    def concurrency(self, policy: Compiled) -> Verdict:
        if self.context.kind != "trigger":
            return Verdict("not_applicable", "concurrency counts runs")
        rules = policy.rules
        key = self.key(policy, "running")
        admitted, count = counters.concurrency_acquire(
            key, limit=rules["max_running"], member=self.member, dry=self.dry
        )
        if admitted:
            return Verdict(
                "pass",
                f"{count} of {rules['max_running']} running",
                reservation=None
                if self.dry
                else {"kind": "concurrency", "key": key, "member": self.member},
            )
        reason = f"{rules['max_running']} runs of this agent already in flight"
        if rules["action_on_violation"] == "queue":
            return Verdict(
                "delay", f"{reason}; waiting for a slot", delay_until=timezone.now() + QUEUE_RETRY
            )
        return Verdict("deny", reason)

    def time_window(self, policy: Compiled) -> Verdict:
        if self.context.kind != "trigger":
            return Verdict("not_applicable", "time windows apply to runs")
        rules, zone = policy.rules, policy.zone
        local = self.at.astimezone(zone)
        if _in_window(local, rules):
            return Verdict("pass", f"{local:%a %H:%M} {rules['timezone']} is inside the window")
        reason = f"{local:%a %Y-%m-%d %H:%M} {rules['timezone']} is outside the allowed window"
        if rules["action_on_violation"] == "delay_until_allowed":
            until = next_allowed(self.at, rules, zone)
            if until is None:
                return Verdict("deny", f"{reason}, and no allowed moment in the next 366 days")
            return Verdict(
                "delay",
                f"{reason}; delayed to {until.astimezone(zone):%a %Y-%m-%d %H:%M %Z}",
                delay_until=until,
            )
        return Verdict("deny", reason)

    def cost_budget(self, policy: Compiled) -> Verdict:
        rules = policy.rules
        period, ttl = _budget_period(self.at, rules["period"], policy.zone)
        key = f"{counters.PREFIX}:{policy.id}:budget:{period}"
        limit = int(Decimal(str(rules["max_cost_usd"])) * MICRO)
        estimate = self.context.estimated_cost_usd
        if estimate is None and self.context.kind == "trigger":
            estimate = _run_estimate(self.version, self.context.payload)
        estimate_micro = int((estimate or Decimal(0)) * MICRO)
        if self.context.kind == "trigger":
            admitted, reserved, spent = counters.budget_reserve(
                key,
                limit_micro=limit,
                estimate_micro=estimate_micro,
                member=self.member,
                ttl=ttl,
                dry=self.dry,
            )
        else:
            reserved, spent = counters.budget_state(key)
            admitted = reserved + spent + estimate_micro <= limit
        state = f"${(reserved + spent) / 1_000_000:.4f} of ${rules['max_cost_usd']} this {rules['period']}"
        if admitted:
            reservation = None
            if self.context.kind == "trigger" and not self.dry:
                reservation = {"kind": "budget", "key": key, "member": self.member, "ttl": ttl}
            return Verdict("pass", state, reservation=reservation)
        reason = f"budget exceeded: {state}"
        if rules["action"] == "alert":
            return Verdict("alert", reason)
        if rules["action"] == "require_approval":
            if not self.context.approved:
                return Verdict("require_approval", reason)
            reservation = None
            if self.context.kind == "trigger" and not self.dry:
                # Over the budget by a person's decision: reserved all the same, so that
                # the run's actual cost is counted when it settles.
                counters.budget_reserve(
                    key,
                    limit_micro=2**62,
                    estimate_micro=estimate_micro,
                    member=self.member,
                    ttl=ttl,
                )
                reservation = {"kind": "budget", "key": key, "member": self.member, "ttl": ttl}
            return Verdict("pass", f"{reason}; approved", reservation=reservation)
        return Verdict("deny", reason)

    def model_routing(self, policy: Compiled) -> Verdict:
        if self.context.kind != "trigger":
            return Verdict("not_applicable", "routing chooses a run's model")
        rules = policy.rules
        complexity, how = _complexity(self.context, rules)
        route = rules["route_by_complexity"].get(complexity)
        if route is None:
            return Verdict(
                "pass", f"{complexity} ({how}): no route for it, the version's model stays"
            )
        return Verdict(
            "route",
            f"{complexity} ({how}) → {route['provider']} {route['model']}",
            route={key: value for key, value in route.items() if value is not None},
        )

    def content_safety(self, policy: Compiled) -> Verdict:
        where = "input" if self.context.kind == "trigger" else "tool_payload"
        rules = policy.rules
        if where not in rules["check"]:
            return Verdict("not_applicable", f"this policy does not check the {where}")
        findings = safety.scan(self.payload_text(), rules, list(policy.patterns))
        if not findings:
            return Verdict("pass", f"nothing found in the {where}")
        found = ", ".join(sorted({finding.kind for finding in findings}))
        blocking = [f for f in findings if f.action == "block"]
        if blocking:
            return Verdict(
                "deny", f"the {where} contains {', '.join(sorted({f.kind for f in blocking}))}"
            )
        if any(f.action == "redact" for f in findings):
            redacted = safety.redact(self.context.payload, rules, list(policy.patterns))
            return Verdict("redact", f"redacted from the {where}: {found}", payload=redacted)
        return Verdict("flag", f"flagged in the {where}: {found}")

    def approval_required(self, policy: Compiled) -> Verdict:
        needed = policy.rules["require_approval_for"]
        if self.context.action in needed:
            if self.context.approved:
                return Verdict("pass", f"{self.context.action} was approved")
            return Verdict("require_approval", f"{self.context.action} needs approval")
        return Verdict("not_applicable", f"{self.context.action} needs no approval here")

    def destination(self, policy: Compiled) -> Verdict:
        if self.context.kind != "tool_call":
            return Verdict("not_applicable", "destinations are checked at tool calls")
        rules = policy.rules
        kind = self.context.destination
        if kind in rules["denied_destinations"]:
            return Verdict("deny", f"{kind} is a denied destination")
        allowed = rules.get("allowed_destinations") or []
        if allowed and kind not in allowed:
            return Verdict("deny", f"{kind} is not an allowed destination")
        targets = (
            self.context.target if isinstance(self.context.target, list) else [self.context.target]
        )
        for target in (t for t in targets if t):
            problem = _destination_problem(kind, target, rules)
            if problem:
                return Verdict("deny", problem)
        return Verdict("pass", f"{kind} allowed")


def _in_window(local: datetime, rules: dict[str, Any]) -> bool:
    return (
        DAYS[local.weekday()] in rules["allowed_days"]
        and local.hour in rules["allowed_hours"]
        and local.date().isoformat() not in rules["blackout_dates"]
    )


def next_allowed(at: datetime, rules: dict[str, Any], zone: zoneinfo.ZoneInfo) -> datetime | None:
    """The first hour after ``at`` that is inside the window, right across DST: the local
    wall clock is walked hour by hour; an hour that does not exist that day (spring
    forward) is skipped, and a repeated one (fall back) is taken at its first occurrence."""
    wall = at.astimezone(zone).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    for _ in range(366 * 24):
        wall += timedelta(hours=1)
        aware = wall.replace(tzinfo=zone)
        exists = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall
        if exists and _in_window(aware, rules):
            return aware
    return None


def _budget_period(at: datetime, period: str, zone: zoneinfo.ZoneInfo | None) -> tuple[str, int]:
    local = at.astimezone(zone or zoneinfo.ZoneInfo("UTC"))
    if period == "month":
        return local.strftime("%Y-%m"), 33 * 86400
    return local.date().isoformat(), 2 * 86400


def _run_estimate(version: Any, payload: Any) -> Decimal:
    """What a run may cost, reserved at admission: one turn's worst case (the prompt as
    sent, the whole max_tokens answered) at the version's model price; 0 when unpriced."""
    from integrations.llm.pricing import cost_usd

    llm = (version.config.get("llm") if version else None) or {}
    if not llm:
        return Decimal(0)
    prompt = len(llm.get("system_prompt", "")) + len(json.dumps(payload, default=str))
    cost = cost_usd(llm.get("model", ""), prompt // 4 + 1, llm.get("max_tokens", 1024))
    return cost or Decimal(0)


def _complexity(context: Context, rules: dict[str, Any]) -> tuple[str, str]:
    if context.complexity_hint in ("simple", "medium", "complex"):
        return context.complexity_hint, "hint"
    if rules["complexity_detector"] == "hint":
        return "medium", "no hint given"
    tokens = len(json.dumps(context.payload, default=str)) // 4
    thresholds = rules["thresholds"]
    if tokens <= thresholds["simple_max_tokens"]:
        return "simple", f"~{tokens} tokens"
    if tokens <= thresholds["medium_max_tokens"]:
        return "medium", f"~{tokens} tokens"
    return "complex", f"~{tokens} tokens"


def _domain_in(host: str, domains: Iterable[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(
        host == d.lower().lstrip(".") or host.endswith("." + d.lower().lstrip(".")) for d in domains
    )


def _destination_problem(kind: str | None, target: str, rules: dict[str, Any]) -> str | None:
    if kind == "slack":
        channel = target.lstrip("#").lower()
        denied = {c.lstrip("#").lower() for c in rules["denied_channels"]}
        allowed = {c.lstrip("#").lower() for c in rules["allowed_channels"]}
        if channel in denied or (allowed and channel not in allowed):
            return f"channel {target} is not allowed"
    elif kind == "email":
        address = target.lower()
        domain = "@" + address.rpartition("@")[2]
        denied = {r.lower() for r in rules["denied_recipients"]}
        allowed = {r.lower() for r in rules["allowed_recipients"]}
        if address in denied or domain in denied or (allowed and not ({address, domain} & allowed)):
            return f"recipient {target} is not allowed"
    else:
        host = urlsplit(target).hostname or target
        if _domain_in(host, rules["denied_domains"]) or (
            rules["allowed_domains"] and not _domain_in(host, rules["allowed_domains"])
        ):
            return f"domain {host} is not allowed"
    return None


EVALUATORS = {
    "rate_limit": Evaluation.rate_limit,
    "concurrency": Evaluation.concurrency,
    "time_window": Evaluation.time_window,
    "cost_budget": Evaluation.cost_budget,
    "model_routing": Evaluation.model_routing,
    "content_safety": Evaluation.content_safety,
    "approval_required": Evaluation.approval_required,
    "destination": Evaluation.destination,
}


# --- the decision -----------------------------------------------------------------------------


def decide(
    *,
    agent: Any,
    version: Any,
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
    try:
        for policy in policies:
            if decision.outcome != "allow":
                decision.trace.append(
                    _entry(policy, "skipped", f"decided by {decision.policy_name}")
                )
                continue
            if policy.type == "content_safety":
                evaluation.context = _with_payload(context, decision.payload)
            verdict = EVALUATORS[policy.type](evaluation, policy)
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
    if payload is context.payload:
        return context
    return Context(**{**asdict(context), "payload": payload})


def _entry(policy: Compiled, verdict: str, reason: str) -> dict[str, Any]:
    return {
        "policy_id": policy.id,
        "policy_name": policy.name,
        "policy_type": policy.type,
        "priority": policy.priority,
        "verdict": verdict,
        "reason": reason,
    }


def _approval_rules(deciding: Compiled, policies: list[Compiled]) -> dict[str, Any]:
    """Who approves: the approval policy that decided, or — when a budget asked for an
    approval — the first approval policy that applies, else admins only."""
    if deciding.type == "approval_required":
        return {"policy_id": deciding.id, **deciding.rules}
    for policy in policies:
        if policy.type == "approval_required":
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


def release_reservations(
    reservations: list[dict[str, Any]], actual_cost_usd: Decimal | None = None
) -> None:
    """What a run held when it ends: its concurrency slot is freed, and its budget
    reservation settled with its actual cost (with the reservation itself when the cost is
    unknown: an unpriced model is not free). Its rate-window entry stays: it ran. Safe to
    call twice."""
    for reservation in reservations:
        if reservation["kind"] == "concurrency":
            counters.concurrency_release(reservation["key"], reservation["member"])
        elif reservation["kind"] == "budget":
            actual = -1 if actual_cost_usd is None else int(actual_cost_usd * MICRO)
            counters.budget_settle(
                reservation["key"],
                member=reservation["member"],
                actual_micro=actual,
                ttl=reservation["ttl"],
            )


def undo_reservations(reservations: list[dict[str, Any]]) -> None:
    """Take back everything a decision reserved for a run that will not happen (a later
    policy stopped it, or it was not created after all): its rate-window entry too."""
    for reservation in reservations:
        if reservation["kind"] == "rate":
            counters.rate_release(reservation["key"], reservation["member"])
        elif reservation["kind"] == "budget":
            counters.budget_settle(
                reservation["key"],
                member=reservation["member"],
                actual_micro=0,
                ttl=reservation["ttl"],
            )
        else:
            counters.concurrency_release(reservation["key"], reservation["member"])
