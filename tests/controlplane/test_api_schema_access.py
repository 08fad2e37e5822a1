"""Who may read the API's schema and Swagger UI (issue 14, defect 6: the schema was public).

By default only who the API accepts: a browser session or an API key. Anonymous, the schema
is 401 in the envelope and Swagger UI (page and script) redirects to the login page.
``PUBLIC_SCHEMA`` (``CONTROLPLANE_PUBLIC_SCHEMA=1``) publishes both.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings

from tests import factories
from tests.api import assert_error
from tests.processes import ROOT

pytestmark = pytest.mark.django_db

SCHEMA = "/api/schema/"
DOCS = ["/api/docs/", "/api/docs/?script="]


def assert_schema(response: Any) -> None:
    assert response.status_code == 200, response.content
    assert b"openapi:" in response.content
    assert b"/api/v1/agents/{ref}" in response.content


def assert_docs(response: Any, path: str) -> None:
    assert response.status_code == 200, response.content
    if "script" in path:
        assert b"SwaggerUIBundle(" in response.content
    else:
        assert b"swagger-ui" in response.content


def test_anonymous_schema_is_401_in_the_envelope(client: Client) -> None:
    response = client.get(SCHEMA)

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Api-Key realm="api"'


@pytest.mark.parametrize("path", DOCS)
def test_anonymous_docs_redirect_to_the_login_page(client: Client, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=" + path.replace("?", "%3F").replace("=", "%3D")


def test_anonymous_is_back_on_the_docs_after_logging_in(client: Client) -> None:
    factories.user("pat")
    response = client.post(
        "/login/",
        {"username": "pat", "password": "correct horse battery staple", "next": "/api/docs/"},
    )

    assert response.status_code == 302
    assert response["Location"] == "/api/docs/"
    assert_docs(client.get("/api/docs/"), "/api/docs/")


def test_a_bad_api_key_is_401_on_both(client: Client) -> None:
    for path in (SCHEMA, DOCS[0]):
        response = client.get(path, HTTP_AUTHORIZATION="Api-Key nope")
        assert_error(response, 401, "authentication_failed")


@pytest.mark.parametrize("role", ["viewer", "operator", "admin", None])
def test_a_signed_in_user_reads_both(client: Client, role: str | None) -> None:
    client.force_login(factories.user("pat", role=role))

    assert_schema(client.get(SCHEMA))
    for path in DOCS:
        assert_docs(client.get(path), path)


def test_an_api_key_reads_both(admin_user: Any) -> None:
    api = factories.api_client(admin_user, "viewer")

    assert_schema(api.get(SCHEMA))
    for path in DOCS:
        assert_docs(api.get(path), path)


@override_settings(PUBLIC_SCHEMA=True)
def test_public_schema_publishes_both_to_anyone(client: Client) -> None:
    assert_schema(client.get(SCHEMA))
    for path in DOCS:
        assert_docs(client.get(path), path)


@pytest.mark.parametrize(("value", "public"), [(None, False), ("0", False), ("1", True)])
def test_the_setting_comes_from_the_environment(
    tmp_path: Path, value: str | None, public: bool
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "CONTROLPLANE_VAR_DIR": str(tmp_path / "var"),
        **({} if value is None else {"CONTROLPLANE_PUBLIC_SCHEMA": value}),
    }
    code = "from django.conf import settings; print(settings.PUBLIC_SCHEMA)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(public)
