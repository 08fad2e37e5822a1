"""JSON Schemas operators write, checked when written and run without reaching out.

Every schema the project accepts (a version's input and output schema, and any other) goes
through ``check_schema`` when it is saved and through ``validator`` when it is used:

- A ``$ref`` / ``$dynamicRef`` / ``$recursiveRef`` must point inside the schema (``#…``),
  and ``$schema`` must name one of the dialects the validator ships. A remote URL would make
  the web process fetch it (a server-side request past the tools' network guard), so it is
  refused with the path where it stands, and the validators are built on a
  ``referencing.Registry`` that retrieves nothing: a reference that does not resolve inside
  the schema is a validation error, never a request.
- ``pattern`` and ``patternProperties`` run on RE2 (``controlplane.patterns``): a pattern
  RE2 cannot run is refused when written. ``unevaluatedProperties`` next to
  ``patternProperties`` is refused too: the library evaluates that pair with Python's
  backtracking ``re``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any, cast

import referencing
import referencing.exceptions
from jsonschema import (
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
    FormatChecker,
    SchemaError,
    ValidationError,
    validators,
)
from jsonschema.protocols import Validator

from controlplane.patterns import UnsafePattern, check_pattern, search

DIALECTS: dict[str, type[Validator]] = {}
for _cls in (
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
):
    _uri = str(_cls.META_SCHEMA["$schema"]).rstrip("#")
    DIALECTS[_uri] = DIALECTS[_uri + "#"] = _cls

REFERENCE_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
# Keywords whose value is data, not a schema: a "$ref" in there is not a reference.
DATA_KEYWORDS = frozenset(("const", "enum", "default", "examples", "example"))
FORMATS = FormatChecker()


class SchemaProblem(ValueError):
    """A schema refused, with where (``properties/name/pattern``) and why."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{message} (at {path})" if path else message)
        self.path = path


def _refuse_retrieval(uri: str) -> referencing.Resource[Any]:
    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]


# The validators' registry: the dialects' meta-schemas are in the library; anything else is
# not fetched.
REGISTRY: referencing.Registry[Any] = referencing.Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]


def _walk(
    node: Any, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every schema object in ``node`` with its path (data keywords skipped)."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key not in DATA_KEYWORDS:
                yield from _walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, str(index)))


def check_schema(schema: Any) -> dict[str, Any]:
    """``schema`` itself if it is a JSON Schema this server runs; else ``SchemaProblem``."""
    if not isinstance(schema, dict):
        raise SchemaProblem("A JSON Schema here must be an object.")
    has_pattern_properties = has_unevaluated = False
    for path, node in _walk(schema):
        where = "/".join(path)
        for keyword in REFERENCE_KEYWORDS:
            ref = node.get(keyword)
            if isinstance(ref, str) and not ref.startswith("#"):
                raise SchemaProblem(
                    f"{keyword} {ref!r} points outside the schema; only references inside it "
                    "(#/$defs/…) are allowed, remote ones are never fetched",
                    "/".join((*path, keyword)),
                )
        dialect = node.get("$schema")
        if dialect is not None and (not isinstance(dialect, str) or dialect not in DIALECTS):
            raise SchemaProblem(
                f"$schema {dialect!r} is not a dialect this server knows; use one of "
                + ", ".join(sorted(uri for uri in DIALECTS if not uri.endswith("#"))),
                "/".join((*path, "$schema")),
            )
        patterns = []
        if isinstance(node.get("pattern"), str):
            patterns.append(("pattern", node["pattern"]))
        if isinstance(node.get("patternProperties"), dict):
            has_pattern_properties = True
            patterns += [(f"patternProperties/{key}", key) for key in node["patternProperties"]]
        has_unevaluated = has_unevaluated or "unevaluatedProperties" in node
        for keyword, pattern in patterns:
            try:
                check_pattern(pattern)
            except UnsafePattern as exc:
                raise SchemaProblem(str(exc), f"{where}/{keyword}" if where else keyword) from None
    if has_pattern_properties and has_unevaluated:
        raise SchemaProblem(
            "unevaluatedProperties together with patternProperties is not supported: "
            "use additionalProperties"
        )
    cls = _dialect(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise SchemaProblem(
            f"Not a valid JSON Schema: {exc.message}", "/".join(str(p) for p in exc.absolute_path)
        ) from None
    except RecursionError:
        raise SchemaProblem("The JSON Schema is nested too deeply.") from None
    return schema


def _dialect(schema: dict[str, Any]) -> type[Validator]:
    dialect = schema.get("$schema")
    return (
        DIALECTS.get(dialect, Draft202012Validator)
        if isinstance(dialect, str)
        else (Draft202012Validator)
    )


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, pattern_properties: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for key, value in instance.items():
            if search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    known = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = sorted(
        (key for key in instance if key not in known and not any(search(p, key) for p in patterns)),
        key=str,
    )
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        listed = ", ".join(repr(extra) for extra in extras)
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            regexes = ", ".join(repr(p) for p in sorted(patterns))
            yield ValidationError(f"{listed} {verb} not match any of the regexes: {regexes}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({listed} {verb} unexpected)"
            )


@functools.cache
def _safe(cls: type[Validator]) -> type[Validator]:
    """``cls`` with the pattern keywords on RE2."""
    return cast(
        type[Validator],
        validators.extend(  # type: ignore[no-untyped-call]
            cls,
            validators={
                "pattern": _pattern,
                "patternProperties": _pattern_properties,
                "additionalProperties": _additional_properties,
            },
        ),
    )


class SafeValidator:
    """A checked schema's validator: RE2 patterns, formats checked, nothing retrieved."""

    def __init__(self, schema: dict[str, Any], *, formats: bool = True) -> None:
        cls = _safe(_dialect(schema))
        self._validator = cls(
            schema, registry=REGISTRY, format_checker=FORMATS if formats else None
        )

    def iter_errors(self, instance: Any) -> list[ValidationError]:
        """Every error, sorted by path; a reference that does not resolve, or a pattern
        that cannot run (a schema stored before the checks), is one error at the root."""
        try:
            errors = list(self._validator.iter_errors(instance))
        except referencing.exceptions.Unresolvable as exc:
            return [
                ValidationError(
                    f"The schema's reference {exc.ref!r} does not resolve.", validator="$ref"
                )
            ]
        except UnsafePattern as exc:
            return [ValidationError(str(exc), validator="pattern")]
        except RecursionError:
            return [
                ValidationError("The schema or the value is nested too deeply.", validator="depth")
            ]
        return sorted(errors, key=lambda error: [str(part) for part in error.absolute_path])


@functools.lru_cache(maxsize=1024)
def _cached(text: str, formats: bool) -> SafeValidator:
    return SafeValidator(json.loads(text), formats=formats)


def validator(schema: dict[str, Any], *, formats: bool = True) -> SafeValidator:
    """A ``SafeValidator`` for ``schema``, compiled once per distinct schema."""
    return _cached(json.dumps(schema, sort_keys=True), formats)
