"""Serializer building blocks for an API whose contract is strict.

DRF is lenient by default: it ignores unknown fields and coerces ``"true"`` to ``True`` and
``5`` to ``"5"``. Here an unknown field is an error and a value must already have its JSON
type, so that a typo or a wrong type is a clear 400 instead of a silent surprise.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError


class StrictMixin:
    """Refuse keys the serializer does not declare, at every nesting level."""

    def to_internal_value(self, data: Any) -> Any:
        errors: dict[str, Any] = {}
        value = None
        try:
            value = super().to_internal_value(data)  # type: ignore[misc]
        except ValidationError as exc:
            if not isinstance(exc.detail, dict):
                raise
            errors.update(exc.detail)
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}  # type: ignore[attr-defined]
            for key in sorted(set(data) - writable, key=str):
                errors[str(key)] = [ErrorDetail("Unknown field.", code="unknown_field")]
        if errors:
            raise ValidationError(errors)
        return value


class StrictSerializer(StrictMixin, serializers.Serializer[Any]):
    pass


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class TimeZoneField(StrictCharField):
    """An IANA time zone name (``America/New_York``), default UTC."""

    default_error_messages = {"invalid_timezone": "Unknown time zone {value!r}."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("default", "UTC")
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self.fail("invalid_timezone", value=value)
        return value


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be an integer."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    default_error_messages = {"invalid": "Must be a number."}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictEmailField(serializers.EmailField):
    default_error_messages = {"invalid": "Must be a valid e-mail address."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictURLField(serializers.URLField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


MAX_JSON_DEPTH = 32
# What each problem ``json_problem`` finds means, said to whoever sent it.
JSON_PROBLEMS: dict[str, Any] = {
    "nul": "Must not contain NUL characters.",
    "not_text": "Must be Unicode text: a lone surrogate (such as \\udfff) is not a character.",
    "too_deep": f"Must not nest objects and arrays deeper than {MAX_JSON_DEPTH} levels.",
}


def text_problem(text: str, *, nul: bool = True) -> str | None:
    """ "nul" if ``text`` holds NUL, which PostgreSQL refuses in text and JSON; "not_text" if
    it holds a lone surrogate (JSON's ``"\\udfff"``), which no UTF-8 encoder writes.
    ``nul=False``: the surrogates only."""
    if nul and "\x00" in text:
        return "nul"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "not_text"
    return None


def storable_text(text: str) -> str:
    """``text`` as a database can store it: lone surrogates as U+FFFD, NUL as ``\\x00``."""
    if text_problem(text) is None:
        return text
    return "".join(
        "\ufffd" if 0xD800 <= ord(char) <= 0xDFFF else "\\x00" if char == "\x00" else char
        for char in text
    )


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH, *, nul: bool = True) -> str | None:
    """A string (or key) with a ``text_problem``, or "too_deep" if objects and arrays nest
    deeper than ``max_depth``. Iterative, so a hostile document cannot exhaust the stack here
    or later (validators, hashing)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item, nul=nul)
            if problem:
                return problem
        elif isinstance(item, Mapping | list | tuple):
            if depth > max_depth:
                return "too_deep"
            if isinstance(item, Mapping):
                stack.extend((key, depth) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
    return None


class JSONValueField(serializers.JSONField):
    """Any JSON value, of text without NUL or lone surrogates, nested at most
    ``MAX_JSON_DEPTH`` levels."""

    default_error_messages = JSON_PROBLEMS

    def to_internal_value(self, data: Any) -> Any:
        problem = json_problem(data)
        if problem:
            self.fail(problem)
        return super().to_internal_value(data)


class JSONObjectField(JSONValueField):
    """Any JSON object (not a list or a scalar), without NUL characters, nested at most
    ``MAX_JSON_DEPTH`` levels."""

    default_error_messages = {"not_object": "Must be a JSON object."}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.fail("not_object")
        value: dict[str, Any] = super().to_internal_value(data)
        return value
