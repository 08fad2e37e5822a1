"""Policy types are plug-ins: one module per type in this package, found by its name.

To add a type, say ``quota``:

1. Write ``policies/types/quota.py`` declaring one ``POLICY_TYPE = PolicyType(...)``
   (``policies.types.base``) named like the module, with
   - ``rules``: its rules serializer (a ``StrictSerializer``: what valid rules are, every
     key with its default — the stored form);
   - ``form``: its console form, a ``policies.types.fields.RulesForm`` subclass naming the
     type (``policy_type``) and the serializer (``rules_class``);
   - ``evaluate(evaluation, policy) -> Verdict``: its answer to one decision
     (``Evaluation`` is the decision in progress, ``Compiled`` the policy as indexed);
   - where it has them: ``prepare`` (what is compiled from the rules once per index
     build, e.g. a time zone, regexes: ``Compiled.ahead``) and its special outcomes,
     declared flags and hooks rather than ``if type == ...`` elsewhere
     (``reads_redacted``, ``names_approvers``, ``holds_agent``, ``risk_floor``, and for a
     type that reserves something for a run: ``reservation``, ``release``, ``undo``,
     ``reconcile``).
2. Add its choice to ``policies.models.Policy.Type`` and make the migration
   (``manage.py makemigrations policies``): the type is stored as a choice.

Nothing else: the engine, the API, the admin and the console ask this registry. Modules
whose names start with ``_`` and the shared ``base``, ``fields`` and ``stored`` are not types. The
modules are imported once, on the first lookup, in name order.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any

from policies.types.base import PolicyType

SHARED = frozenset({"base", "fields", "stored"})


class UnknownPolicyType(LookupError):
    """A name no module of ``policies.types`` declares."""


@cache
def _registry() -> dict[str, PolicyType[Any]]:
    """Every type module of this package, imported in name order."""
    found: dict[str, PolicyType[Any]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if info.name in SHARED or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        declared = getattr(module, "POLICY_TYPE", None)
        if not isinstance(declared, PolicyType) or declared.name != info.name:
            raise TypeError(f"{module.__name__} must declare POLICY_TYPE, named {info.name!r}.")
        found[declared.name] = declared
    return found


@cache
def _by_reservation() -> dict[str, PolicyType[Any]]:
    """Which type makes each kind of reservation."""
    return {each.reservation: each for each in _registry().values() if each.reservation}


def all_types() -> tuple[PolicyType[Any], ...]:
    """Every policy type, in name order."""
    return tuple(_registry().values())


def policy_type(name: str) -> PolicyType[Any]:
    """The type called ``name``; ``UnknownPolicyType`` when no module declares it."""
    try:
        return _registry()[name]
    except KeyError:
        known = ", ".join(_registry())
        raise UnknownPolicyType(f"Unknown policy type {name!r} (known: {known}).") from None


def reservation_maker(kind: str) -> PolicyType[Any]:
    """The type that makes reservations of this kind (what a run holds: "rate", ...)."""
    try:
        return _by_reservation()[kind]
    except KeyError:
        raise UnknownPolicyType(f"No policy type makes {kind!r} reservations.") from None


def risk_floor(name: str | None) -> str:
    """The least risk of an approval asked for by a policy of this type (no type: low)."""
    return policy_type(name).risk_floor if name else "low"
