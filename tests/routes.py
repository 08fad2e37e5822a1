"""The URL conf as a list of routes, for tests that ask every page and endpoint (the access
matrix, the secret sweep): a route added to the project is asked from its first commit."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

# Django's ``<conv:arg>`` and the DRF router's ``(?P<arg>…)``.
ARGUMENT = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>[^)]*\)")


def routes(
    patterns: list[Any] | None = None, prefix: str = "", namespace: str = ""
) -> Iterator[tuple[str, str]]:
    """(route, name) for every URL pattern outside the admin, its arguments left in."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        text = str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if text == "admin/":
                continue
            inner = ":".join(part for part in (namespace, pattern.namespace or "") if part)
            yield from routes(pattern.url_patterns, prefix + text, inner)
        elif isinstance(pattern, URLPattern):
            yield prefix + text, ":".join(part for part in (namespace, pattern.name or "") if part)


def fill(route: str, name: str, values: dict[str, str]) -> str | None:
    """The route as a path, its arguments taken from ``values``; ``pk`` is looked up as
    ``pk:<app>`` — the namespace of a page (``pk:executions``), the basename of an API route
    (``pk:execution``). ``None`` when ``values`` has nothing for an argument."""
    missing: list[str] = []

    def value(match: re.Match[str]) -> str:
        argument = match.group(1) or match.group(2)
        if argument == "pk":
            namespace, _, view = name.partition(":")
            argument = "pk:" + (view.split("-")[0] if namespace == "api" else namespace)
        if not values.get(argument):
            missing.append(argument)
            return ""
        return values[argument]

    path = ARGUMENT.sub(value, route).replace("^", "").replace("$", "")
    return None if missing else "/" + path
