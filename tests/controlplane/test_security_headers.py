"""Security headers: the Content-Security-Policy every answer carries (django-csp)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests import factories

POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def directives(header: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        assert name not in parsed, f"{name} given twice"
        parsed[name] = sources
    return parsed


@pytest.mark.parametrize(
    "path", ["/login/", "/dashboard/", "/agents/", "/api-keys/", "/api/docs/", "/admin/"]
)
def test_pages_carry_the_content_security_policy(client: Client, db: Any, path: str) -> None:
    client.force_login(factories.user("root", role="admin"))

    response = client.get(path)

    assert response.status_code == 200
    assert directives(response["Content-Security-Policy"]) == POLICY
    assert "Content-Security-Policy-Report-Only" not in response


def test_the_api_and_error_pages_carry_it_too(client: Client, db: Any) -> None:
    for response in (client.get("/api/v1/agents"), client.get("/no-such-page/")):
        assert response.status_code in (401, 403, 404)
        assert directives(response["Content-Security-Policy"]) == POLICY


def test_the_api_docs_have_no_inline_script_or_style(client: Client, db: Any) -> None:
    page = client.get("/api/docs/").content.decode()
    script = client.get("/api/docs/?script=")

    assert "<script>" not in page and "<style" not in page
    assert 'src="/api/docs/?script="' in page
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in script.content.decode()
