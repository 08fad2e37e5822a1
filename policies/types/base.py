"""What every policy type is made of, and what the types share.

A type is a ``PolicyType``: its rules serializer, its console form, its evaluation (a
function of the decision in progress, ``Evaluation``, and the compiled policy,
``Compiled``, returning a ``Verdict``), what it compiles ahead from its rules, and its
special outcomes as declared flags and hooks — so that the engine, the console and the
other apps ask the type instead of comparing its name.

Nothing here imports ``policies.engine`` or ``policies.forms``: they import the types, not
the other way round. ``Context`` — what is being decided — is here for the evaluations; the
engine hands it on as its own input (``policies.engine.Context``).
"""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar

from rest_framework import serializers

from controlplane.serializers import StrictSerializer
from integrations.tools.registry import TOOLS
from policies import counters, safety
from policies.types.stored import validated

if TYPE_CHECKING:
    from agents.models import Agent, AgentVersion
    from policies.types.fields import RulesForm

DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
RISK_LEVELS = ("low", "medium", "high", "critical")
COMPLEXITIES = ("simple", "medium", "complex")
APPROVABLE_ACTIONS = ("execute", *sorted(TOOLS))
QUEUE_RETRY = timedelta(seconds=5)  # a run waiting for a concurrency slot is looked at again

# What a decision holds for a run, stored with it: {"kind": ..., "key": ..., "member": ...}.
Reservation = dict[str, Any]
# Which of these run ids are still going (the caller knows; policies does not import runs).
StillGoing = Callable[[list[str]], set[str]]

T = TypeVar("T")


class PolicyRow(TypedDict):
    """A policy as the index is built from it (``Policy.objects.values(...)``)."""

    id: uuid.UUID
    policy_name: str
    policy_type: str
    priority: int
    rules: dict[str, Any]


def rules_list(
    child: serializers.Field[Any, Any, Any, Any], **kwargs: Any
) -> serializers.ListField:
    """A list rule of at most 500 items (unless told)."""
    return serializers.ListField(child=child, max_length=kwargs.pop("max_length", 500), **kwargs)


def zone_of(rules: dict[str, Any]) -> zoneinfo.ZoneInfo | None:
    """The rules' time zone, looked up once at compile time rather than per decision."""
    return zoneinfo.ZoneInfo(rules["timezone"]) if "timezone" in rules else None


@dataclass(frozen=True)
class Context:
    """What is being decided. At trigger time ``payload`` is the input; at a tool call it is
    the tool's arguments, ``action`` the tool action, ``destination`` its kind of place
    (email, slack, external_api, webhook) and ``target`` where exactly (channel, recipients,
    URL)."""

    # "trigger" | "tool_call", or content coming back, which only the types that screen
    # content decide (``PolicyType.screens_content``): "tool_result" (before the model reads
    # it) | "output" (the model's answer).
    kind: str
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
class Verdict:
    """One policy's answer to one decision."""

    verdict: str  # pass | deny | rate_limited | delay | require_approval | route | alert | flag | redact | not_applicable
    reason: str = ""
    delay_until: datetime | None = None
    route: dict[str, Any] | None = None
    payload: Any = None
    reservation: Reservation | None = None


@dataclass(frozen=True)
class Compiled(Generic[T]):
    """An enabled policy as the index holds it: its row, its type, and what the type
    compiled ahead from its rules (``ahead``: a time zone, regexes; None when nothing)."""

    id: str
    name: str
    type: str
    priority: int
    rules: dict[str, Any]
    plugin: PolicyType[T]
    ahead: T

    @property
    def order(self) -> tuple[int, str]:
        return (self.priority, self.name)


class Evaluation:
    """One decision in progress: the agent, the context, the time, dry or not."""

    def __init__(
        self,
        agent: Agent,
        version: AgentVersion | None,
        context: Context,
        at: datetime,
        dry: bool,
    ) -> None:
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

    def key(self, policy: Compiled[Any], what: str) -> str:
        """A counter of this policy for this agent."""
        return f"{counters.PREFIX}:{policy.id}:{what}:{self.agent.pk}"


def _nothing_ahead(rules: dict[str, Any]) -> None:
    """Most types compile nothing ahead."""


def _keeps(reservation: Reservation, actual_cost_usd: Decimal | None) -> bool:
    """A reservation that stays when its run ends (a rate-window entry: the run ran)."""
    return False


def _no_undo(reservation: Reservation) -> None:
    """Nothing to take back."""


@dataclass(frozen=True)
class PolicyType(Generic[T]):
    """One policy type, as its module in ``policies.types`` declares it.

    The flags and hooks are the type's special outcomes, asked by the engine and the
    other apps instead of comparing type names.
    """

    name: str  # the Policy.Type choice, and the module's name
    rules: type[StrictSerializer]  # what valid rules are, with their defaults
    form: type[RulesForm]  # the console's fields for the rules
    evaluate: Callable[[Evaluation, Compiled[T]], Verdict]
    # What is compiled from the rules once per index build (Compiled.ahead).
    prepare: Callable[[dict[str, Any]], T] = _nothing_ahead  # type: ignore[assignment]
    # Reads the payload as the policies before it redacted it (not as it came).
    reads_redacted: bool = False
    # Decides content coming back too (a tool's result, the model's answer: ``SCREENED``
    # contexts); the other types are not asked about those.
    screens_content: bool = False
    # Its rules say who approves: a decision that asks for approval takes them from the
    # deciding policy of this type, else from the first applicable one.
    names_approvers: bool = False
    # When it keeps a run waiting, the agent's later runs wait for the same thing (a
    # slot): they need not be decided again in the same pass.
    holds_agent: bool = False
    # The least risk of an approval request it asked for.
    risk_floor: str = "low"
    # The kind of reservation it makes ("rate", "concurrency", "budget"), and what becomes
    # of one: ``release`` when the run ended (True: it freed something a waiting run may
    # take), ``undo`` when the run will not happen.
    reservation: str | None = None
    release: Callable[[Reservation, Decimal | None], bool] = _keeps
    undo: Callable[[Reservation], None] = _no_undo
    # Frees what runs that ended still hold (a worker died before giving it back); how many.
    reconcile: Callable[[StillGoing, int], int] | None = None

    def __post_init__(self) -> None:
        """A form of another type's rules, or an unknown risk, fails at import, not later."""
        if self.form.policy_type != self.name or self.form.rules_class is not self.rules:
            raise TypeError(f"{self.form.__name__} is not the form of {self.name}'s rules.")
        if self.risk_floor not in RISK_LEVELS:
            raise TypeError(f"{self.name}: risk_floor must be one of {RISK_LEVELS}.")

    def validated(self, rules: Any) -> dict[str, Any]:
        """The stored form of ``rules`` for this type (see ``validated``)."""
        return validated(self.rules, rules)

    def compile(self, row: PolicyRow) -> Compiled[T]:
        """A policy row (``id``, ``policy_name``, ``policy_type``, ``priority``, ``rules``)
        as the index holds it."""
        rules = row["rules"]
        return Compiled(
            str(row["id"]),
            row["policy_name"],
            row["policy_type"],
            row["priority"],
            rules,
            self,
            self.prepare(rules),
        )
