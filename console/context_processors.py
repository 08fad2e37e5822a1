from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

# The console's navigation: (label, url name). Later pages add themselves here.
NAV = [
    ("Dashboard", "dashboard"),
    ("Agents", "agents:list"),
    ("Executions", "executions:list"),
    ("Policies", "policies:list"),
    ("Audit log", "audit"),
    ("API keys", "api-keys"),
]


def console(request: HttpRequest) -> dict[str, Any]:
    items = []
    for label, name in NAV:
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        items.append({"label": label, "url": url, "active": request.path.startswith(url)})
    return {"nav_items": items}
