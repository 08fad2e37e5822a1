from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from controlplane.audit import RequestContext, request_context
from controlplane.errors import error_response, is_api_request
from controlplane.serializers import text_problem

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR, or the address our TRUSTED_PROXY_COUNT proxies saw, if configured."""
    candidate = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops:
        forwarded = [
            part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        ]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= hops:
            candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return ""


class RequestContextMiddleware:
    """Gives each request an id and a client IP (for the audit log and error envelopes),
    refuses a path, query or header holding text no database stores (NUL, or a lone
    surrogate) with 400, and API bodies over ``API_MAX_BODY_BYTES`` with 413, before anything
    reads them. (JSON bodies are checked by the API's parser; form fields by Django's.)"""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        request.id = request_id  # type: ignore[attr-defined]  # an attribute of ours
        token = request_context.set(RequestContext(request_id=request_id, ip=client_ip(request)))
        try:
            response = (
                _refuse_text(request) or self._refuse_body(request) or self.get_response(request)
            )
        finally:
            request_context.reset(token)
        response["X-Request-ID"] = request_id
        return response

    def _refuse_body(self, request: HttpRequest) -> HttpResponse | None:
        if not is_api_request(request):
            return None
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return error_response(400, "malformed_request", "Content-Length is not a number.")
        if length > settings.API_MAX_BODY_BYTES:
            return error_response(
                413,
                "payload_too_large",
                f"The request body is {length} bytes; the limit is {settings.API_MAX_BODY_BYTES}.",
                {"limitBytes": settings.API_MAX_BODY_BYTES},
            )
        return None


def _unstorable(request: HttpRequest) -> str | None:
    """Where the request carries text with a ``text_problem``, if anywhere."""
    if text_problem(request.path_info):
        return "the path"
    for name, values in request.GET.lists():
        if any(text_problem(text) for text in (name, *values)):
            return f"the query parameter {name!r}"
    for key, value in request.META.items():
        header = key.startswith("HTTP_") or key == "CONTENT_TYPE"
        if header and isinstance(value, str) and text_problem(value):
            return f"the header {key.removeprefix('HTTP_').replace('_', '-').title()}"
    return None


def _refuse_text(request: HttpRequest) -> HttpResponse | None:
    where = _unstorable(request)
    if where is None:
        return None
    message = f"Text in {where} holds a NUL character or a lone surrogate."
    if is_api_request(request):
        return error_response(400, "malformed_request", message)
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
