"""The real URLs plus the benchmark's floor: the barest Django JSON view."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path

from console.urls import handler400, handler403, handler404, handler500
from console.urls import urlpatterns as real

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]


def bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/bare", bare), *real]
