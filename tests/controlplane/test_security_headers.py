"""Security headers and cookies: the Content-Security-Policy every answer carries
(django-csp); the session and CSRF cookies' flags under the production settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests import factories
from tests.browser import PASSWORD
from tests.processes import ROOT

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
    client.force_login(factories.user("pat"))
    page = client.get("/api/docs/").content.decode()
    script = client.get("/api/docs/?script=")

    assert "<script>" not in page and "<style" not in page
    assert 'src="/api/docs/?script="' in page
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in script.content.decode()


COOKIE_SETTINGS = [
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_SECURE",
    "CSRF_COOKIE_HTTPONLY",
    "CSRF_COOKIE_SAMESITE",
    "SECURE_SSL_REDIRECT",
]


def cookie_settings(tmp_path: Path, **env: str) -> dict[str, Any]:
    """The cookie settings as a fresh interpreter reads them from exactly this environment."""
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        f"print(json.dumps({{name: getattr(settings, name) for name in {COOKIE_SETTINGS!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "controlplane.settings",
            "CONTROLPLANE_VAR_DIR": str(tmp_path / "var"),
            "SECRET_KEY": "k" * 60,
            "DEBUG": "0",
            "ALLOWED_HOSTS": "controlplane.example.com",
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_production_cookies_are_secure_httponly_and_lax(tmp_path: Path) -> None:
    production = cookie_settings(tmp_path, CONTROLPLANE_HTTPS="1")
    plain = cookie_settings(tmp_path)

    assert production == {
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SECURE": True,
        "CSRF_COOKIE_HTTPONLY": True,
        "CSRF_COOKIE_SAMESITE": "Lax",
        "SECURE_SSL_REDIRECT": True,
    }
    assert plain == {
        **production,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_SSL_REDIRECT": False,
    }


def test_a_login_under_the_production_values_sets_flagged_cookies(
    tmp_path: Path, settings: Any, db: Any
) -> None:
    """The values the production environment gives (read as above), applied to this process,
    on a real sign-in through the login form over HTTPS."""
    for name, value in cookie_settings(tmp_path, CONTROLPLANE_HTTPS="1").items():
        setattr(settings, name, value)
    factories.user("alice", role="operator")
    client = Client(enforce_csrf_checks=True)

    form = client.get("/login/", secure=True)
    token = form.cookies["csrftoken"]
    answer = client.post(
        "/login/",
        {
            "username": "alice",
            "password": PASSWORD,
            "csrfmiddlewaretoken": form.context["csrf_token"],
        },
        secure=True,
        HTTP_REFERER="https://testserver/login/",
    )

    assert answer.status_code == 302
    for cookie in (token, answer.cookies["sessionid"], answer.cookies["csrftoken"]):
        header = cookie.OutputString()
        assert cookie["secure"] is True, header
        assert cookie["httponly"] is True, header
        assert cookie["samesite"] == "Lax", header
    assert client.get("/login/").status_code == 301  # plain HTTP is sent to HTTPS
