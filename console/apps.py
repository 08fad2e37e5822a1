from __future__ import annotations

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The top of the house: the pages that read every app (the dashboard, the live
    websocket), the demo, and the project's wiring (URLs, ASGI, routing)."""

    name = "console"
    verbose_name = "Console"
