"""Websocket routes. The live pages' consumers add themselves here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.urls import path

from console.consumers import LiveConsumer

if TYPE_CHECKING:
    from channels.routing import URLRouter, _ExtendedURLPattern

# Channels routes Django's URL patterns to ASGI applications; django-stubs type path() for
# views only, hence the ignore (channels-stubs call such a pattern _ExtendedURLPattern).
websocket_urlpatterns: list[_ExtendedURLPattern | URLRouter] = [
    path("ws/live/", LiveConsumer.as_asgi()),  # type: ignore[arg-type, list-item]
]
