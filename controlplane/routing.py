"""Websocket routes. The live pages' consumers add themselves here."""

from __future__ import annotations

from django.urls import path

from controlplane.consumers import LiveConsumer

websocket_urlpatterns = [path("ws/live/", LiveConsumer.as_asgi())]
