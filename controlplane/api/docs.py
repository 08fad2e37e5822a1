"""The OpenAPI schema (``/api/schema/``) and Swagger UI (``/api/docs/``), for signed-in users.

Whoever the API accepts may read them: a browser session or an API key. Anonymous, the
schema is 401 in the error envelope (``not_authenticated``) and Swagger UI, a page, sends the
browser to the login page and back. ``settings.PUBLIC_SCHEMA`` (``CONTROLPLANE_PUBLIC_SCHEMA=1``)
publishes both to anyone; it is read on every request.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import exceptions
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api.renderers import JSONRenderer


def _permissions() -> list[BasePermission]:
    return [AllowAny()] if settings.PUBLIC_SCHEMA else [IsAuthenticated()]


def _as_json(request: Request, response: Response) -> Response:
    """An error in the API's JSON envelope, whatever the view renders otherwise (YAML, a
    page, a script)."""
    request.accepted_renderer = JSONRenderer()
    request.accepted_media_type = "application/json"
    return response


class SchemaView(SpectacularAPIView):
    """The schema: signed-in users only, unless ``PUBLIC_SCHEMA``."""

    def get_permissions(self) -> list[BasePermission]:
        return _permissions()

    def handle_exception(self, exc: Exception) -> Response:
        return _as_json(self.request, super().handle_exception(exc))


class SwaggerView(SpectacularSwaggerSplitView):
    """Swagger UI (the page and its script): signed-in users only, unless ``PUBLIC_SCHEMA``;
    an anonymous browser is redirected to the login page."""

    def get_permissions(self) -> list[BasePermission]:
        return _permissions()

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, exceptions.NotAuthenticated):
            # A page: the login form, then back here (not the API's 401).
            return redirect_to_login(self.request.get_full_path())  # type: ignore[return-value]
        return _as_json(self.request, super().handle_exception(exc))
