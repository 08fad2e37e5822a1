"""``manage.py bench policies``: each figure next to its floor, measured in the same run.

- decision latency, in process: 1,000 policies over 200 agents and 50 tags (five for every
  agent, the rest spread over agents and tags: about 30 apply to each agent), kinds that
  need no counter (time windows, routing, content safety, destinations, approvals), every
  applicable one looked at; p50 and p99 of ``decide`` on the process's compiled index, vs
  the same call on an index with no policy (the engine's fixed cost);
- decision latency with the Redis counters: ``decide`` as the trigger calls it (the index
  version check, then a rate limit, a concurrency limit and a budget on top of the same
  policies), vs the same Redis round trips made raw from the same client (one GET, three
  EVALSHA);
- scale: the in-process p99 with 10,000 policies vs with 100, where the policies that apply
  to the agents measured are the same and the others apply to other agents and tags — a
  decision costs what applies, not what exists; and the index rebuild every process does
  after a policy change, at 10,000 vs at 100;
- rate-limit checks per second through ``policies.counters`` vs raw EVALSHA of the same
  script from the same client, one thread, best of three alternating rounds.

Runs inside ``bench.harness.isolated_environment`` (its own database and Redis).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from django.conf import settings
from django.db import transaction

from agents import services as agent_services
from agents.api.serializers import AgentCreateSerializer
from agents.models import Agent, AgentVersion, Tag
from bench.harness import metric, percentile
from controlplane.access import Actor
from policies import counters, engine
from policies.models import Policy
from policies.rules import validated_rules

AGENTS = 200
TAGS = 50
TAGS_PER_AGENT = 3
PROBES = 20  # the agents decisions are timed for
T = TypeVar("T")
PAYLOAD = {
    "ticket": "Customer 4471 asks why invoice INV-2026-0912 was charged twice last week.",
    "priority": "high",
    "channel": "support-queue",
}

# Kinds that need no counter; each passes, so that every applicable policy is looked at.
IN_PROCESS_RULES: list[tuple[str, dict[str, Any]]] = [
    ("time_window", {"allowed_hours": list(range(24)), "timezone": "America/New_York"}),
    ("content_safety", {"pii": "block", "prompt_injection": "block"}),
    (
        "model_routing",
        {"route_by_complexity": {"complex": {"provider": "anthropic", "model": "claude-x"}}},
    ),
    ("destination", {"denied_domains": ["evil.example"]}),
    ("approval_required", {"require_approval_for": ["send_email"]}),
    (
        "content_safety",
        {"pii": "off", "custom_patterns": [{"name": "key", "pattern": r"sk-[A-Za-z0-9]{20,}"}]},
    ),
]
COUNTER_RULES: list[tuple[str, dict[str, Any]]] = [
    ("rate_limit", {"max_executions": 10_000_000, "window_minutes": 60}),
    ("concurrency", {"max_running": 100_000}),
    ("cost_budget", {"max_cost_usd": 1_000_000}),
]


def run(*, samples: int, seconds: float, policies: int) -> dict[str, Any]:
    """All the figures (inside the throwaway environment)."""
    from django.contrib.auth.models import User

    actor = Actor(user=User.objects.create_superuser("bench", "bench@localhost", None))
    made = _agents(actor)
    agents = [probe.agent for probe in made]
    probes = made[:PROBES]
    results: dict[str, Any] = {
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    }

    _world(_spread(policies, agents), actor)
    index = engine.current_index()
    empty = engine.PolicyIndex(b"empty", [], {}, {}, {})
    timed = _latencies(lambda probe: _decide(probe, index), probes, samples)
    floor = _latencies(lambda probe: _decide(probe, empty), probes, samples)
    results["decision_in_process_p50_ms"] = metric(
        percentile(timed, 50), percentile(floor, 50), unit="ms", target="—", better="lower"
    )
    results["decision_in_process_p99_ms"] = metric(
        percentile(timed, 99), percentile(floor, 99), unit="ms", target="< 1 ms", better="lower"
    )

    _world(_spread(policies, agents) + _counters(agents[:PROBES]), actor)
    with_counters = _latencies(lambda probe: _decide(probe, None), probes, samples)
    raw = _raw_round_trips(samples)
    results["decision_with_counters_p50_ms"] = metric(
        percentile(with_counters, 50), percentile(raw, 50), unit="ms", target="—", better="lower"
    )
    results["decision_with_counters_p99_ms"] = metric(
        percentile(with_counters, 99), percentile(raw, 99), unit="ms", target="—", better="lower"
    )

    scale: dict[int, tuple[float, float]] = {}
    for total in (100, 10_000):
        _world(_probe_world(total, agents), actor)
        started = time.perf_counter()
        index = engine.build_index(b"bench")
        build_ms = (time.perf_counter() - started) * 1000

        def on_index(probe: Probe, index: engine.PolicyIndex = index) -> engine.Decision:
            return _decide(probe, index)

        timed = _latencies(on_index, probes, samples)
        scale[total] = (percentile(timed, 99), build_ms)
    results["decision_p99_ms_at_10000_vs_100_policies"] = metric(
        scale[10_000][0], scale[100][0], unit="ms", target="ratio ≤ 2", better="lower"
    )
    results["index_rebuild_ms_at_10000_vs_100_policies"] = metric(
        scale[10_000][1], scale[100][1], unit="ms", target="—", better="lower"
    )

    ours, bare = _rate_checks_per_second(seconds)
    results["rate_limit_checks_per_second"] = metric(
        ours, bare, unit="checks/s", target="ratio ≥ 0.5", better="higher"
    )
    return results


# --- the worlds -------------------------------------------------------------------------------


class Probe(NamedTuple):
    """An agent, and the version its decisions are taken for (the one it was made with)."""

    agent: Agent
    version: AgentVersion


def _agents(actor: Actor) -> list[Probe]:
    made = []
    for n in range(AGENTS):
        serializer = AgentCreateSerializer(
            data={
                "name": f"bench-agent-{n}",
                "version": "1.0.0",
                "owner_email": "bench@localhost",
                "runtime": "llm",
                "llm": {"provider": "simulated", "model": "claude-haiku-4-5"},
                "tags": [f"tag-{(n + k * 17) % TAGS}" for k in range(TAGS_PER_AGENT)],
            }
        )
        serializer.is_valid(raise_exception=True)
        agent, _ = agent_services.agent_create(actor=actor, data=serializer.validated_data)
        made.append(Probe(agent, agent.versions.get()))
    return made


Spec = tuple[str, str, dict[str, Any], str, Any]  # name, type, rules, scope, target


def _spread(total: int, agents: list[Agent]) -> list[Spec]:
    """``total`` policies: five for all agents, then 60 % for one agent and 40 % for one tag,
    round robin, kinds in turn."""
    kinds = itertools.cycle(IN_PROCESS_RULES)
    specs: list[Spec] = []
    for n in range(total):
        kind, rules = next(kinds)
        if n < 5:
            specs.append((f"all-{n}", kind, rules, "all", None))
        elif n % 5 < 3:
            specs.append((f"agent-{n}", kind, rules, "agent", agents[n % len(agents)]))
        else:
            specs.append((f"tag-{n}", kind, rules, "tag", f"tag-{n % TAGS}"))
    return specs


def _counters(agents: list[Agent]) -> list[Spec]:
    return [
        (f"counter-{agent.name}-{kind}", kind, rules, "agent", agent)
        for agent in agents
        for kind, rules in COUNTER_RULES
    ]


def _probe_world(total: int, agents: list[Agent]) -> list[Spec]:
    """The probes' policies (the same in every world: five for all agents, three each, and
    three for each of their tags), then others for other agents and tags up to ``total``."""
    probes, others = agents[:PROBES], agents[PROBES:]
    probe_tags = sorted({tag.name for agent in probes for tag in agent.tags.all()})
    other_tags = [f"other-tag-{n}" for n in range(TAGS)]
    kinds = itertools.cycle(IN_PROCESS_RULES)
    specs: list[Spec] = [(f"all-{n}", *next(kinds), "all", None) for n in range(5)]
    specs += [
        (f"probe-{agent.name}-{n}", *next(kinds), "agent", agent)
        for agent in probes
        for n in range(3)
    ]
    specs += [
        (f"probe-{tag}-{n}", *next(kinds), "tag", tag) for tag in probe_tags for n in range(3)
    ]
    for n in range(total - len(specs)):
        kind, rules = next(kinds)
        if n % 2:
            specs.append((f"other-{n}", kind, rules, "agent", others[n % len(others)]))
        else:
            specs.append((f"other-tag-{n}", kind, rules, "tag", other_tags[n % TAGS]))
    return specs


@transaction.atomic
def _world(specs: list[Spec], actor: Actor) -> None:
    """Exactly these policies, enabled (bulk-written: the rules validated as the API does,
    the rest is setup, not what is measured)."""
    Policy.objects.all().delete()
    tags = {tag.name: tag for tag in Tag.objects.all()}
    validated: dict[str, dict[str, Any]] = {}
    rows, links = [], []
    for name, kind, rules, scope, target in specs:
        key = f"{kind}:{rules!r}"
        if key not in validated:
            validated[key] = validated_rules(kind, rules)
        policy = Policy(
            policy_name=name,
            policy_type=kind,
            applies_to=scope,
            target_agent=target if scope == "agent" else None,
            rules=validated[key],
            priority=100,
            created_by=actor.user,
        )
        rows.append(policy)
        if scope == "tag":
            if target not in tags:
                tags[target] = Tag.objects.create(name=target)
            links.append(Policy.target_tags.through(policy=policy, tag=tags[target]))
    Policy.objects.bulk_create(rows, batch_size=1000)
    Policy.target_tags.through.objects.bulk_create(links, batch_size=1000)
    transaction.on_commit(engine.index_changed)


# --- the measures -----------------------------------------------------------------------------


def _decide(probe: Probe, index: engine.PolicyIndex | None) -> engine.Decision:
    return engine.decide(
        agent=probe.agent,
        version=probe.version,
        context=engine.Context(kind="trigger", payload=PAYLOAD, execution_id=uuid.uuid4().hex),
        index=index,
    )


def _latencies(call: Callable[[T], object], agents: list[T], samples: int) -> list[float]:
    """Milliseconds per call, round robin over ``agents``, after a warm-up."""
    for agent in agents:
        call(agent)
    timings = []
    for n in range(samples):
        agent = agents[n % len(agents)]
        started = time.perf_counter_ns()
        call(agent)
        timings.append((time.perf_counter_ns() - started) / 1e6)
    return timings


def _raw_round_trips(samples: int) -> list[float]:
    """The Redis work of a decision with three counters, made raw: GET the index version,
    then EVALSHA the rate, concurrency and budget scripts, one after another."""
    client = counters.client()
    rate = client.script_load(counters.RATE_LIMIT)
    slots = client.script_load(counters.CONCURRENCY)
    budget = client.script_load(counters.BUDGET_RESERVE)
    prefix = f"{counters.PREFIX}:bench-raw"

    def trips() -> None:
        member = uuid.uuid4().hex
        client.get(engine.VERSION_KEY)
        client.evalsha(rate, 1, f"{prefix}:rate", 3_600_000, 10_000_000, member, "0")
        client.evalsha(slots, 2, f"{prefix}:running", f"{prefix}:keys", 100_000, member, "0")
        client.evalsha(budget, 1, f"{prefix}:budget", 10**12, 0, member, 86400, "0")

    return _latencies(lambda _: trips(), [None], samples)


def _rate_checks_per_second(seconds: float, rounds: int = 3) -> tuple[float, float]:
    client = counters.client()
    sha = client.script_load(counters.RATE_LIMIT)
    window_ms, limit = 60_000, 10**9

    def ours(key: str) -> None:
        counters.rate_acquire(key, limit=limit, window_ms=window_ms, member=uuid.uuid4().hex)

    def bare(key: str) -> None:
        client.evalsha(sha, 1, key, window_ms, limit, uuid.uuid4().hex, "0")

    def per_second(check: Callable[[str], None], key: str) -> float:
        done, deadline = 0, time.perf_counter() + seconds / rounds
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            for _ in range(100):
                check(key)
            done += 100
        return done / (time.perf_counter() - started)

    best_ours = best_bare = 0.0
    for n in range(rounds):
        best_ours = max(best_ours, per_second(ours, f"{counters.PREFIX}:bench-ours:{n}"))
        best_bare = max(best_bare, per_second(bare, f"{counters.PREFIX}:bench-bare:{n}"))
    return best_ours, best_bare
