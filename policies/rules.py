"""What valid ``rules`` are, per policy type, in one place (the API, the admin, the console
and the demo loader all validate through ``validated_rules``).

Each type's module in ``policies.types`` has a strict serializer (unknown keys and wrong
JSON types are errors); the stored form has every key, with its default. Seed 000's
examples are valid as written.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError

from policies import types as policy_types


def validated_rules(policy_type: str, rules: Any) -> dict[str, Any]:
    """The stored form of ``rules`` for ``policy_type``; ``ValidationError`` with field
    paths under ``rules`` otherwise."""
    try:
        kind = policy_types.policy_type(policy_type)
    except policy_types.UnknownPolicyType:
        raise ValidationError({"policy_type": [f"Unknown policy type {policy_type!r}."]}) from None
    return kind.validated(rules)
