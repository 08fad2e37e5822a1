"""Bad input to every API endpoint is a 4xx in the envelope, never a 500 (issue 14, defect 4:
what schemathesis found).

Every list endpoint under ``/api/v1`` is asked for impossible pages (``page`` / ``page_size``
0, negative, not a number: 400 naming the parameter; a page past the end: 404; a huge page
size: clamped to 200; a cursor the API did not make: 400). Every detail and action endpoint
is asked for ids that are no id (36 zeros, ``abc``, a control character, NUL): 404 with the
resource's not-found code. A last test checks, against the OpenAPI schema, that no endpoint
was left out.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from controlplane.access import Actor
from controlplane.api.pagination import NewestFirstCursorPagination, PagePagination
from executions.models import Execution
from executions.trigger import TriggerRequest, execution_trigger
from tests import factories
from tests.api import assert_error, field_errors

pytestmark = pytest.mark.django_db

# Placeholders in the endpoint templates below, filled by ``real_ids``.
AGENT = "{agent}"
EXECUTION = "{execution}"

# Every list endpoint: (path, its pagination).
PAGED = "page"
CURSOR = "cursor"
LISTS = [
    ("/api/v1/agents", PAGED),
    (f"/api/v1/agents/{AGENT}/versions", PAGED),
    ("/api/v1/approvals", PAGED),
    ("/api/v1/audit", PAGED),
    ("/api/v1/executions", CURSOR),
    (f"/api/v1/executions/{EXECUTION}/logs", PAGED),
    ("/api/v1/policies", PAGED),
]

# Every endpoint that takes an id or name in its path: (method, path with ``{id}`` where the
# bad id goes, status, code). The rest of the path (another id) is real, so only the bad one
# is tested.
BY_ID = [
    ("get", "/api/v1/agents/{id}", 404, "agent_not_found"),
    ("patch", "/api/v1/agents/{id}", 404, "agent_not_found"),
    ("delete", "/api/v1/agents/{id}", 404, "agent_not_found"),
    ("post", "/api/v1/agents/{id}/activate", 404, "agent_not_found"),
    ("post", "/api/v1/agents/{id}/deprecate", 404, "agent_not_found"),
    ("get", "/api/v1/agents/{id}/diff?from=1.0.0&to=1.0.0", 404, "agent_not_found"),
    ("post", "/api/v1/agents/{id}/execute", 404, "agent_not_found"),
    ("post", "/api/v1/agents/{id}/pause", 404, "agent_not_found"),
    ("post", "/api/v1/agents/{id}/promote", 404, "agent_not_found"),
    ("post", "/api/v1/agents/{id}/rollback", 404, "agent_not_found"),
    ("get", "/api/v1/agents/{id}/schedule", 404, "agent_not_found"),
    ("post", "/api/v1/agents/{id}/schedule/pause", 404, "agent_not_found"),
    ("post", "/api/v1/agents/{id}/schedule/resume", 404, "agent_not_found"),
    ("get", "/api/v1/agents/{id}/versions", 404, "agent_not_found"),
    ("post", "/api/v1/agents/{id}/versions", 404, "agent_not_found"),
    ("get", "/api/v1/agents/{id}/versions/1.0.0", 404, "agent_not_found"),
    ("patch", "/api/v1/agents/{id}/versions/1.0.0", 404, "agent_not_found"),
    ("get", f"/api/v1/agents/{AGENT}/versions/{{id}}", 404, "version_not_found"),
    ("patch", f"/api/v1/agents/{AGENT}/versions/{{id}}", 404, "version_not_found"),
    ("post", "/api/v1/agents/{id}/webhook-secret", 404, "agent_not_found"),
    ("get", "/api/v1/approvals/{id}", 404, "not_found"),
    ("post", "/api/v1/approvals/{id}/approve", 404, "not_found"),
    ("post", "/api/v1/approvals/{id}/reject", 404, "not_found"),
    ("get", "/api/v1/audit/{id}", 404, "not_found"),
    ("get", "/api/v1/executions/{id}", 404, "execution_not_found"),
    ("post", "/api/v1/executions/{id}/cancel", 404, "execution_not_found"),
    ("get", "/api/v1/executions/{id}/logs", 404, "execution_not_found"),
    ("get", "/api/v1/executions/{id}/logs?page_size=0", 404, "execution_not_found"),
    # The runtime's callback: an unknown run is the same 401 as a wrong token (it tells the
    # caller nothing about which runs exist); a malformed id is an unknown run.
    ("post", "/api/v1/executions/{id}/report", 401, "authentication_failed"),
    # The signed webhook: an unknown agent is the same 401 as a bad signature.
    ("post", "/api/v1/hooks/agents/{id}", 401, "authentication_failed"),
    ("get", "/api/v1/policies/{id}", 404, "policy_not_found"),
    ("patch", "/api/v1/policies/{id}", 404, "policy_not_found"),
    ("delete", "/api/v1/policies/{id}", 404, "policy_not_found"),
    ("post", "/api/v1/policies/{id}/disable", 404, "policy_not_found"),
    ("post", "/api/v1/policies/{id}/enable", 404, "policy_not_found"),
]

# Ids that are not ids, as they appear in the URL: 36 zeros (the length of a UUID, as
# schemathesis sent), letters, a C1 control character, NUL (refused for every path by
# controlplane.middleware), a number past any integer column.
BAD_IDS = ["0" * 36, "abc", "%C2%80", "%00", "9" * 30]

# (query, status, code, the parameter a 400 names)
BAD_PAGES = [
    ("page=0", 400, "validation_error", "page"),
    ("page=-1", 400, "validation_error", "page"),
    ("page=abc", 400, "validation_error", "page"),
    ("page=1.5", 400, "validation_error", "page"),
    ("page=last", 400, "validation_error", "page"),
    ("page_size=0", 400, "validation_error", "page_size"),
    ("page_size=-658", 400, "validation_error", "page_size"),
    ("page_size=abc", 400, "validation_error", "page_size"),
    ("page_size=%C2%80", 400, "validation_error", "page_size"),
    ("page=147472", 404, "not_found", None),
    ("page=" + "9" * 5000, 404, "not_found", None),
    ("page_size=-658&page=147472", 400, "validation_error", "page_size"),
]
BAD_CURSORS = [
    ("cursor=abc", 400, "validation_error", "cursor"),
    ("cursor=%C2%80", 400, "validation_error", "cursor"),
    # Decodable, but its position is no date: "p=nonsense" in base64.
    ("cursor=cD1ub25zZW5zZQ%3D%3D", 400, "validation_error", "cursor"),
    ("page_size=0", 400, "validation_error", "page_size"),
    ("page_size=-658", 400, "validation_error", "page_size"),
    ("page_size=abc", 400, "validation_error", "page_size"),
]


@pytest.fixture
def client(admin_user: Any) -> Any:
    """An admin's API key: every endpoint is reachable, so every answer is about the input.
    A crash comes back as the 500 it would be, not as an exception in the test."""
    api = factories.api_client(admin_user)
    api.raise_request_exception = False
    return api


@pytest.fixture
def real_ids(admin_user: Any) -> dict[str, str]:
    """A runnable agent (version 1.0.0) and one queued run of it."""
    agent = factories.runnable_agent(admin_user)
    execution: Execution = execution_trigger(
        TriggerRequest(actor=Actor(user=admin_user), agent=agent, input={}, source="api")
    ).execution
    return {AGENT: agent.name, EXECUTION: str(execution.pk)}


def fill(template: str, ids: dict[str, str]) -> str:
    for placeholder, value in ids.items():
        template = template.replace(placeholder, value)
    return template


def call(client: Any, method: str, url: str) -> Any:
    if method in ("post", "patch"):
        return getattr(client, method)(url, {}, format="json")
    return getattr(client, method)(url)


def assert_answer(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code != 500, response.content
    assert_error(response, status, code)
    if field is not None:
        assert field in field_errors(response), response.content


@pytest.mark.parametrize(("query", "status", "code", "field"), BAD_PAGES)
@pytest.mark.parametrize("path", [path for path, kind in LISTS if kind == PAGED])
def test_impossible_pages(
    client: Any,
    real_ids: dict[str, str],
    path: str,
    query: str,
    status: int,
    code: str,
    field: str | None,
) -> None:
    response = client.get(f"{fill(path, real_ids)}?{query}")

    assert_answer(response, status, code, field)


@pytest.mark.parametrize(("query", "status", "code", "field"), BAD_CURSORS)
@pytest.mark.parametrize("path", [path for path, kind in LISTS if kind == CURSOR])
def test_impossible_cursors(
    client: Any,
    real_ids: dict[str, str],
    path: str,
    query: str,
    status: int,
    code: str,
    field: str | None,
) -> None:
    response = client.get(f"{fill(path, real_ids)}?{query}")

    assert_answer(response, status, code, field)


@pytest.mark.parametrize("path", [path for path, _ in LISTS])
def test_a_page_size_above_the_largest_is_clamped(
    client: Any, real_ids: dict[str, str], path: str
) -> None:
    response = client.get(f"{fill(path, real_ids)}?page_size=100000")

    assert response.status_code == 200, response.content
    assert "page_size=100000" not in (response.json()["next"] or "")


@pytest.mark.parametrize("pagination", [PagePagination, NewestFirstCursorPagination])
@pytest.mark.parametrize(("asked", "given"), [("500", 200), ("200", 200), ("7", 7), ("", 50)])
def test_the_largest_page_size_is_200(pagination: type, asked: str, given: int) -> None:
    request = Request(APIRequestFactory().get("/", {"page_size": asked}))

    assert pagination().get_page_size(request) == given


def test_empty_page_parameters_count_as_not_given(client: Any, real_ids: dict[str, str]) -> None:
    assert client.get("/api/v1/policies?page=&page_size=").status_code == 200
    assert client.get("/api/v1/executions?cursor=&page_size=").status_code == 200


@pytest.mark.parametrize("bad_id", BAD_IDS)
@pytest.mark.parametrize(("method", "path", "status", "code"), BY_ID)
def test_ids_that_are_no_ids(
    client: Any,
    real_ids: dict[str, str],
    method: str,
    path: str,
    status: int,
    code: str,
    bad_id: str,
) -> None:
    if bad_id == "%00":  # the middleware refuses a NUL anywhere in the path, first
        status, code = 400, "malformed_request"
    elif path.startswith("/api/v1/audit/") and not bad_id.isdecimal():
        code = "not_found"  # the URL only takes digits: Django's 404, in the envelope
    response = call(client, method, fill(path, real_ids).replace("{id}", bad_id))

    assert_answer(response, status, code)


@pytest.mark.parametrize(
    "path", ["/api/v1/policies", "/api/v1/executions", "/api/v1/approvals", "/api/v1/agents"]
)
@pytest.mark.parametrize("value", ["%C2%80q%25", "%25s%25d", "%00", "0" * 36])
def test_odd_agent_filters(client: Any, path: str, value: str) -> None:
    """What schemathesis sent: a control character and ``%`` (which broke the policies'
    error message). Policies answer 400 on ``agent`` for an agent that is not there; the
    other lists filter by it and find nothing; a NUL is refused by the middleware."""
    key = "owner" if path == "/api/v1/agents" else "agent"
    response = client.get(f"{path}?{key}={value}")

    assert response.status_code != 500, response.content
    if value == "%00":
        assert_error(response, 400, "malformed_request")
    elif response.status_code == 400:
        assert_error(response, 400, "validation_error")
        assert key in field_errors(response)
    else:
        assert response.status_code == 200, response.content
        assert response.json()["results"] == []


def test_schemathesis_policies_query(client: Any) -> None:
    """The exact request of the report: the filters are read before the page, so the
    unknown agent is the error."""
    response = client.get(
        "/api/v1/policies?type=content_safety&page_size=-658&page=147472&agent=%C2%80q%25"
    )

    assert_answer(response, 400, "validation_error", "agent")


def test_an_unknown_agent_in_the_policies_filter_is_named(client: Any) -> None:
    response = client.get("/api/v1/policies?agent=%C2%80q%25")

    error = assert_error(response, 400, "validation_error")
    assert field_errors(response) == {"agent": "agent_not_found"}
    assert error["details"]["validationErrors"][0]["message"] == "No agent '\\x80q%'."


def test_every_endpoint_is_covered() -> None:
    """Each path of the OpenAPI schema with a page or an id is in the lists above."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    normal = {
        re.sub(r"\{[^}]+\}", "{}", fill(path, {AGENT: "{a}", EXECUTION: "{e}"})).split("?")[0]
        for path in [path for path, _ in LISTS] + [path for _, path, _, _ in BY_ID]
    }
    for path, operations in schema["paths"].items():
        params = {
            param["name"]
            for operation in operations.values()
            for param in operation.get("parameters", [])
            if param["in"] in ("path", "query")
        }
        if params & {"page", "page_size", "cursor"} or "{" in path:
            assert re.sub(r"\{[^}]+\}", "{}", path) in normal, path
