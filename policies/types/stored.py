"""The stored form of a type's rules: what its serializer validated, as plain JSON."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError

from controlplane.serializers import StrictSerializer


def plain(value: Any) -> Any:
    """Serializer output (OrderedDicts, nested) as plain JSON types."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def validated(serializer_class: type[StrictSerializer], rules: Any) -> dict[str, Any]:
    """The stored form of ``rules`` (every key, with its default); ``ValidationError`` with
    field paths under ``rules`` otherwise."""
    serializer = serializer_class(data=rules)
    if not serializer.is_valid():
        raise ValidationError({"rules": serializer.errors})
    stored: dict[str, Any] = plain(serializer.validated_data)
    return stored
