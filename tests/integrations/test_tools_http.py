"""http_request and external_api_post against a local HTTP server: the allowed domains,
the injected credential and idempotency key, and what the model gets back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from integrations.http.tool import ExternalAPIPostTool, HTTPRequestTool
from integrations.tools.base import ToolContext, ToolError, ToolRefused
from integrations.tools.common import MODEL_BODY_CHARS
from integrations.tools.registry import get_tool
from integrations.vault import Secret

GET = HTTPRequestTool()
POST = ExternalAPIPostTool()
TOKEN = "tok-live-abcdef"


@pytest.fixture(autouse=True)
def loopback_allowed(settings: Any) -> None:
    settings.TOOL_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]


def url(server: HTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def context(credential: Secret | None = None, **config: Any) -> ToolContext:
    return ToolContext(
        execution_id="exec-3",
        agent_name="crm-sync",
        config={"allowed_domains": ["127.0.0.1"], **config},
        idempotency_key="exec-3:call-7",
        credential=credential,
        timeout=5,
    )


def test_get_sends_key_and_bearer_token_and_returns_the_json(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/contacts", query_string="page=2").respond_with_json(
        {"contacts": [{"id": 1}]}
    )
    secret = Secret("http", "http", {"token": TOKEN}, {})

    result = GET.run(context(secret), {"url": url(httpserver, "/contacts?page=2")})

    request, _ = httpserver.log[0]
    assert request.method == "GET"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Idempotency-Key"] == "exec-3:call-7"
    assert result.content == {
        "status": 200,
        "content_type": "application/json",
        "body": {"contacts": [{"id": 1}]},
        "url": url(httpserver, "/contacts?page=2"),
    }
    assert (result.method, result.detail["status"]) == ("GET", 200)
    assert TOKEN not in json.dumps([result.content, result.detail, result.target])


def test_credential_headers_are_injected(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/x").respond_with_data("plain text")
    secret = Secret("crm", "http", {"headers": {"X-Api-Key": "k-123", "X-Tenant": "acme"}}, {})

    result = GET.run(context(secret), {"url": url(httpserver, "/x")})

    request, _ = httpserver.log[0]
    assert (request.headers["X-Api-Key"], request.headers["X-Tenant"]) == ("k-123", "acme")
    assert "Authorization" not in request.headers
    assert result.content["body"] == "plain text"


def test_post_sends_the_payload_as_json(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/leads", method="POST").respond_with_json(
        {"id": "lead-9"}, status=201
    )
    payload = {"name": "Zoë", "score": 0.9, "tags": ["a", "b"], "nested": {"ok": True}}

    result = POST.run(context(), {"url": url(httpserver, "/api/leads"), "payload": payload})

    request, _ = httpserver.log[0]
    assert request.get_json() == payload
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == "exec-3:call-7"
    assert result.content["status"] == 201
    assert result.content["body"] == {"id": "lead-9"}
    assert result.method == "POST"


@pytest.mark.parametrize(
    ("domains", "target", "allowed"),
    [
        (["example.com"], "https://example.com/a", True),
        (["example.com"], "https://api.example.com/a", True),
        (["example.com"], "https://EXAMPLE.com./a", True),
        (["example.com"], "https://example.com.evil.net/a", False),
        (["example.com"], "https://notexample.com/a", False),
        (["api.example.com"], "https://example.com/a", False),
        ([], "https://example.com/a", False),
    ],
)
def test_allowed_domains(domains: list[str], target: str, allowed: bool) -> None:
    for tool, arguments in ((GET, {"url": target}), (POST, {"url": target, "payload": {}})):
        if allowed:
            tool.authorize(arguments, {"allowed_domains": domains})
        else:
            with pytest.raises(ToolRefused):
                tool.authorize(arguments, {"allowed_domains": domains})


def test_empty_allowed_domains_refuses_everything(httpserver: HTTPServer) -> None:
    with pytest.raises(ToolRefused, match="no allowed domains"):
        GET.run(context(allowed_domains=[]), {"url": url(httpserver, "/")})

    assert httpserver.log == []


def test_redirect_off_the_allowed_domains_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/go").respond_with_data(
        "", status=302, headers={"Location": f"http://localhost:{httpserver.port}/elsewhere"}
    )

    with pytest.raises(ToolRefused, match="localhost is not one of this tool's allowed domains"):
        GET.run(context(), {"url": url(httpserver, "/go")})

    assert len(httpserver.log) == 1


@pytest.mark.parametrize(
    ("tool", "arguments", "problem"),
    [
        (GET, {}, "'url' is a required property"),
        (GET, {"url": 7}, "is not of type 'string'"),
        (GET, {"url": "http://127.0.0.1/", "headers": {"Authorization": "x"}}, "Additional"),
        (GET, {"url": "file:///etc/passwd"}, "Only http and https"),
        (POST, {"url": "http://127.0.0.1/"}, "'payload' is a required property"),
        (POST, {"url": "http://127.0.0.1/", "payload": [1, 2]}, "is not of type 'object'"),
    ],
)
def test_bad_arguments_are_refused(tool: Any, arguments: dict[str, Any], problem: str) -> None:
    with pytest.raises(ToolRefused) as refused:
        tool.authorize(arguments, {"allowed_domains": ["127.0.0.1"]})

    assert problem in refused.value.reason


def test_long_bodies_are_trimmed_for_the_model(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/page").respond_with_data("z" * (MODEL_BODY_CHARS + 500))

    result = GET.run(context(), {"url": url(httpserver, "/page")})

    assert result.content["body"].startswith("z" * MODEL_BODY_CHARS)
    assert result.content["body"].endswith("[500 more characters not shown]")


def test_the_tool_config_can_lower_the_size_cap(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/big").respond_with_data("x" * 2000)

    with pytest.raises(ToolError, match="over the 1000-byte limit") as caught:
        GET.run(context(max_response_bytes=1000), {"url": url(httpserver, "/big")})

    assert caught.value.retryable is False


@pytest.mark.parametrize(("status", "retryable"), [(404, False), (503, True), (429, True)])
def test_status_errors(httpserver: HTTPServer, status: int, retryable: bool) -> None:
    httpserver.expect_request("/e").respond_with_json({"error": "nope"}, status=status)

    with pytest.raises(ToolError) as caught:
        POST.run(context(), {"url": url(httpserver, "/e"), "payload": {}})

    assert (caught.value.status, caught.value.retryable) == (status, retryable)
    assert "nope" in caught.value.message


def test_private_targets_still_need_the_operator_allowlist(
    httpserver: HTTPServer, settings: Any
) -> None:
    settings.TOOL_ALLOWED_PRIVATE_NETWORKS = []

    with pytest.raises(ToolRefused, match="loopback"):
        GET.run(context(), {"url": url(httpserver, "/")})


def test_registered_and_safe_to_retry_with_the_key() -> None:
    assert isinstance(get_tool("http_request"), HTTPRequestTool)
    assert isinstance(get_tool("external_api_post"), ExternalAPIPostTool)
    assert GET.idempotent_retry and POST.idempotent_retry
    assert set(GET.input_schema["properties"]) == {"url"}
    assert set(POST.input_schema["properties"]) == {"url", "payload"}
