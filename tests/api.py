"""What every API test checks of an error: seed 002's envelope, its code, the request id."""

from __future__ import annotations

from typing import Any


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is ``status`` with the envelope and ``code``; returns the error."""
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "timestamp", "requestId"}
    assert error["code"] == code, error
    assert error["message"]
    assert error["requestId"] == response["X-Request-ID"]
    return error


def field_errors(response: Any) -> dict[str, str]:
    """``{field path: error code}`` of a 400's validation errors."""
    details = response.json()["error"]["details"]
    return {item["field"]: item["code"] for item in details["validationErrors"]}
