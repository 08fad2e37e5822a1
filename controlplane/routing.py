"""Websocket routes. The live pages' consumers add themselves here."""

from __future__ import annotations

websocket_urlpatterns: list = []
