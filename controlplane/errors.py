"""Errors: the service exceptions and seed 002's envelope for every API error.

Services raise ``ServiceError`` subclasses with a stable ``code``; the API turns them (and
DRF's and Django's own errors) into::

    {"error": {"code", "message", "details", "timestamp", "requestId"}}

with the right status. The pages show ``message``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from django.utils import timezone
from rest_framework import exceptions, status
from rest_framework.response import Response

from controlplane.audit import request_context


class ServiceError(Exception):
    status_code: int = status.HTTP_400_BAD_REQUEST
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


class Invalid(ServiceError):
    """Input that breaks a rule; ``details`` may carry ``validationErrors``."""

    code = "validation_error"

    @classmethod
    def field(cls, field: str, message: str, code: str = "invalid") -> Invalid:
        return cls(
            f"{field}: {message}",
            details={"validationErrors": [{"field": field, "message": message, "code": code}]},
        )


class Unauthenticated(ServiceError):
    """A credential that is not an API key or session (a webhook signature, a callback token)
    is missing or wrong."""

    status_code = status.HTTP_401_UNAUTHORIZED
    code = "authentication_failed"


class Conflict(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class NotFound(ServiceError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class Forbidden(ServiceError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "permission_denied"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details or {},
            "timestamp": timezone.now().isoformat().replace("+00:00", "Z"),
            "requestId": request_context.get().request_id,
        }
    }


def error_response(status_code: int, code: str, message: str, details: Any = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status_code)


def flatten_errors(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """DRF's nested error detail as a flat list of {field, message, code}, field as a dotted path."""
    if isinstance(detail, dict):
        out: list[dict[str, str]] = []
        for key, value in detail.items():
            if key == "non_field_errors":
                name = prefix
            elif isinstance(key, int):  # ListField and many=True errors are keyed by index
                name = f"{prefix}[{key}]"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            out.extend(flatten_errors(value, name))
        return out
    if isinstance(detail, list):
        if all(isinstance(item, exceptions.ErrorDetail) for item in detail):
            return [
                {"field": prefix, "message": str(item), "code": item.code or "invalid"}
                for item in detail
            ]
        out = []
        for index, item in enumerate(detail):
            out.extend(flatten_errors(item, f"{prefix}[{index}]" if prefix else f"[{index}]"))
        return out
    return [{"field": prefix, "message": str(detail), "code": getattr(detail, "code", "invalid")}]


_DRF_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error in the envelope."""
    headers: dict[str, str] = {}
    if isinstance(exc, ServiceError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("payload_too_large", "The request body is too large."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django answers 500 (in the envelope, see handler500)

    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        message = "; ".join(
            f"{item['field']}: {item['message']}" if item["field"] else item["message"]
            for item in errors[:5]
        )
        body = error_body(
            "validation_error", message or "Invalid input.", {"validationErrors": errors}
        )
    else:
        code = next(
            (name for cls, name in _DRF_CODES.items() if isinstance(exc, cls)),
            exc.default_code,
        )
        body = error_body(code, str(exc.detail))
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    if isinstance(exc, exceptions.Throttled):
        # Throttled.__init__ sets ``wait``; djangorestframework-stubs do not declare it.
        wait: int | None = exc.wait  # type: ignore[attr-defined]
        if wait is not None:
            headers["Retry-After"] = str(int(wait))
    return Response(body, status=exc.status_code, headers=headers)


def is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")
