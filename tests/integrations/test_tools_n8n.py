"""n8n_workflow against a local HTTP server standing in for n8n's webhook endpoint."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from integrations.n8n.tool import N8nWorkflowTool, webhook_url
from integrations.tools.base import ToolContext, ToolError, ToolRefused
from integrations.tools.registry import get_tool
from integrations.vault import Secret

TOOL = N8nWorkflowTool()
API_KEY = "n8n_api_0123456789abcdef"


@pytest.fixture(autouse=True)
def loopback_allowed(settings: Any) -> None:
    settings.TOOL_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]


def base(server: HTTPServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def context(credential: Secret | None = None, **config: Any) -> ToolContext:
    return ToolContext(
        execution_id="exec-8",
        agent_name="flows",
        config={"workflow_id": "wf_abc123", **config},
        idempotency_key="exec-8:call-1",
        credential=credential,
        timeout=5,
    )


def test_posts_to_the_configured_webhook_url_with_the_api_key(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/webhook/custom-path", method="POST").respond_with_json(
        {"message": "Workflow was started"}
    )
    secret = Secret("n8n", "n8n", {"api_key": API_KEY}, {})

    result = TOOL.run(
        context(secret, webhook_url=f"{base(httpserver)}/webhook/custom-path"),
        {"payload": {"candidate": "Ada", "stage": "offer"}},
    )

    request, _ = httpserver.log[0]
    assert request.get_json() == {"candidate": "Ada", "stage": "offer"}
    assert request.headers["X-N8N-API-KEY"] == API_KEY
    assert request.headers["Idempotency-Key"] == "exec-8:call-1"
    assert request.headers["X-ControlPlane-Execution"] == "exec-8"
    assert result.content["body"] == {"message": "Workflow was started"}
    assert result.target == "wf_abc123"
    assert API_KEY not in str(result)


def test_builds_the_url_from_the_credential_base_url_and_workflow_id(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/webhook/wf_abc123", method="POST").respond_with_json({"ok": 1})
    secret = Secret("n8n", "n8n", {"api_key": API_KEY}, {"base_url": base(httpserver) + "/"})

    result = TOOL.run(context(secret), {"payload": {}})

    assert result.content["status"] == 200
    assert len(httpserver.log) == 1


def test_the_workflow_id_stays_one_path_segment() -> None:
    secret = Secret("n8n", "n8n", {}, {"base_url": "https://n8n.example.com"})

    assert (
        webhook_url({"workflow_id": "../rest/users"}, secret)
        == "https://n8n.example.com/webhook/..%2Frest%2Fusers"
    )


def test_refuses_without_any_url() -> None:
    with pytest.raises(ToolRefused, match="no webhook_url"):
        TOOL.run(context(None), {"payload": {}})


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [({}, "'payload' is a required property"), ({"payload": 3}, "is not of type 'object'")],
)
def test_bad_arguments_are_refused(arguments: dict[str, Any], problem: str) -> None:
    with pytest.raises(ToolRefused) as refused:
        TOOL.authorize(arguments, {"workflow_id": "wf"})

    assert problem in refused.value.reason


@pytest.mark.parametrize(("status", "retryable"), [(404, False), (500, True)])
def test_n8n_errors(httpserver: HTTPServer, status: int, retryable: bool) -> None:
    httpserver.expect_request("/webhook/wf_abc123").respond_with_json(
        {"code": status, "message": "The requested webhook is not registered."}, status=status
    )
    secret = Secret("n8n", "n8n", {}, {"base_url": base(httpserver)})

    with pytest.raises(ToolError) as caught:
        TOOL.run(context(secret), {"payload": {}})

    assert (caught.value.status, caught.value.retryable) == (status, retryable)
    assert "not registered" in caught.value.message


def test_the_api_key_is_not_sent_to_another_origin_on_redirect(
    httpserver: HTTPServer, settings: Any
) -> None:
    settings.TOOL_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32", "localhost"]
    httpserver.expect_request("/webhook/wf_abc123").respond_with_data(
        "", status=307, headers={"Location": f"http://localhost:{httpserver.port}/moved"}
    )
    httpserver.expect_request("/moved").respond_with_json({"ok": True})
    secret = Secret("n8n", "n8n", {"api_key": API_KEY}, {"base_url": base(httpserver)})

    TOOL.run(context(secret), {"payload": {"x": 1}})

    first, second = (request for request, _ in httpserver.log)
    assert first.headers["X-N8N-API-KEY"] == API_KEY
    assert "X-N8N-API-KEY" not in second.headers
    assert second.headers["Idempotency-Key"] == "exec-8:call-1"
    assert second.get_json() == {"x": 1}


def test_registered_and_safe_to_retry_with_the_key() -> None:
    tool = get_tool("n8n_workflow")

    assert isinstance(tool, N8nWorkflowTool)
    assert tool.idempotent_retry is True
    assert set(tool.input_schema["properties"]) == {"payload"}
