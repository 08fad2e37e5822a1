"""The n8n runtime (POST seed 000's payload, wait for the report) and the webhook runtime,
against a real local server."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from agents import services as agent_services
from controlplane.access import Actor
from executions.maintenance import sweep
from executions.models import Execution
from executions.runtime import run_execution
from executions.trigger import TriggerRequest, execution_trigger
from tests import factories

pytestmark = pytest.mark.django_db


def deployed(owner: Any, **config: Any) -> Any:
    payload = {"name": "flow", "version": "1.0.0", "owner_email": "o@company.com", **config}
    agent = factories.agent(owner, payload=payload)
    factories.to_production(agent, owner)
    agent_services.agent_transition(actor=Actor(user=owner), agent=agent, action="activate")
    agent.refresh_from_db()
    return agent


@pytest.fixture
def workflow(owner: Any, httpserver: Any) -> tuple[Any, Any]:
    httpserver.expect_request("/webhook/wf_abc123", method="POST").respond_with_json(
        {"started": True}
    )
    agent = deployed(
        owner, n8n_workflow_id="wf_abc123", webhook_url=httpserver.url_for("/webhook/wf_abc123")
    )
    return agent, httpserver


def handed_over(agent: Any, owner: Any) -> Execution:
    execution = execution_trigger(
        TriggerRequest(actor=Actor(user=owner), agent=agent, input={"job": 7}, source="api")
    ).execution
    assert run_execution(execution_id=str(execution.pk), attempt=1) == "running"
    execution.refresh_from_db()
    return execution


def posted(server: Any) -> dict[str, Any]:
    [(request, _)] = server.log
    return json.loads(request.get_data())


def test_n8n_gets_seed_000s_payload_and_the_run_waits(workflow: Any, owner: Any) -> None:
    agent, server = workflow

    execution = handed_over(agent, owner)

    payload = posted(server)
    assert payload["execution_id"] == str(execution.pk)
    assert payload["agent_id"] == str(agent.pk)
    assert payload["trigger_context"]["input"] == {"job": 7}
    assert set(payload) >= {
        "approved_actions",
        "policy_constraints",
        "callback_url",
        "callback_token",
    }
    assert payload["callback_url"].endswith(f"/api/v1/executions/{execution.pk}/report")
    assert execution.status == "running" and execution.awaiting_report
    assert payload["callback_token"] not in json.dumps(execution.checkpoint or {})
    assert (
        execution.callback_token_hash and execution.callback_token_hash != payload["callback_token"]
    )


def test_the_report_finishes_the_run_and_records_everything(
    workflow: Any, owner: Any, client: Any
) -> None:
    agent, server = workflow
    execution = handed_over(agent, owner)
    token = posted(server)["callback_token"]
    report = {
        "status": "success",
        "steps_executed": [
            {"step": "fetch", "latency_ms": 850, "status": "success"},
            {"step": "generate", "latency_ms": 12300, "status": "success", "tokens_used": 5420},
        ],
        "tokens_used": 8542,
        "prompt_tokens": 6200,
        "completion_tokens": 2342,
        "llm_provider": "anthropic",
        "llm_model": "claude-sonnet-4-5",
        "actions_taken": [
            {
                "action": "slack_notification",
                "target": "#job-updates",
                "approved": True,
                "auto_approved": True,
            }
        ],
        "output_summary": "Submitted.",
    }

    response = client.post(
        f"/api/v1/executions/{execution.pk}/report",
        report,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )

    assert response.status_code == 200, response.content
    execution.refresh_from_db()
    assert execution.status == "success"
    assert (execution.prompt_tokens, execution.completion_tokens, execution.total_tokens) == (
        6200,
        2342,
        8542,
    )
    assert execution.estimated_cost_usd == Decimal("0.053730")  # 6200 x $3/M + 2342 x $15/M
    assert execution.llm_model == "claude-sonnet-4-5"
    assert list(execution.steps.filter(kind="external").values_list("name", flat=True))[-2:] == [
        "fetch",
        "generate",
    ]
    assert execution.actions.get(action="slack_notification").target == "#job-updates"
    again = client.post(
        f"/api/v1/executions/{execution.pk}/report",
        report,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "execution_finished"


def test_a_report_without_the_token_split_has_unknown_cost(
    workflow: Any, owner: Any, client: Any
) -> None:
    agent, server = workflow
    execution = handed_over(agent, owner)

    client.post(
        f"/api/v1/executions/{execution.pk}/report",
        {
            "status": "failed",
            "tokens_used": 100,
            "llm_model": "claude-sonnet-4-5",
            "error_message": "boom",
        },
        content_type="application/json",
        HTTP_X_EXECUTION_TOKEN=posted(server)["callback_token"],
    )

    execution.refresh_from_db()
    assert (execution.status, execution.error_type, execution.error_message) == (
        "failed",
        "workflow_failed",
        "boom",
    )
    assert execution.total_tokens == 100
    assert execution.estimated_cost_usd is None


@pytest.mark.parametrize("token", ["", "wrong", "Bearer "])
def test_a_report_needs_the_executions_own_token(
    workflow: Any, owner: Any, client: Any, token: str
) -> None:
    agent, _ = workflow
    execution = handed_over(agent, owner)

    response = client.post(
        f"/api/v1/executions/{execution.pk}/report",
        {"status": "success"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert Execution.objects.get(pk=execution.pk).status == "running"


def test_a_malformed_report_is_400(workflow: Any, owner: Any, client: Any) -> None:
    agent, server = workflow
    execution = handed_over(agent, owner)

    response = client.post(
        f"/api/v1/executions/{execution.pk}/report",
        {"status": "great", "extra": 1},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {posted(server)['callback_token']}",
    )

    assert response.status_code == 400
    assert {item["field"] for item in response.json()["error"]["details"]["validationErrors"]} == {
        "status",
        "extra",
    }


def test_no_report_before_the_deadline_times_out(workflow: Any, owner: Any, settings: Any) -> None:
    settings.EXECUTION_TIMEOUT_GRACE_SECONDS = 0
    agent, _ = workflow
    execution = handed_over(agent, owner)
    Execution.objects.filter(pk=execution.pk).update(
        deadline_at=timezone.now() - timedelta(seconds=1)
    )

    sweep()

    execution.refresh_from_db()
    assert execution.status == "timed_out"
    assert "never reported" in execution.error_message


def test_an_unreachable_workflow_fails_the_run(owner: Any) -> None:
    agent = deployed(owner, n8n_workflow_id="wf_x", webhook_url="http://127.0.0.1:9/webhook/wf_x")
    execution = execution_trigger(
        TriggerRequest(actor=Actor(user=owner), agent=agent, input={}, source="api")
    ).execution

    assert run_execution(execution_id=str(execution.pk), attempt=1) == "failed"
    execution.refresh_from_db()
    assert execution.error_type == "external_runtime_error"


def test_the_webhook_runtime_takes_the_answer_as_output(owner: Any, httpserver: Any) -> None:
    httpserver.expect_request("/agent", method="POST").respond_with_json({"answer": 42})
    agent = deployed(owner, runtime="webhook", webhook_url=httpserver.url_for("/agent"))
    execution = execution_trigger(
        TriggerRequest(actor=Actor(user=owner), agent=agent, input={"q": "?"}, source="api")
    ).execution

    assert run_execution(execution_id=str(execution.pk), attempt=1) == "success"
    execution.refresh_from_db()
    assert execution.output == {"answer": 42}
    [(request, _)] = httpserver.log
    assert json.loads(request.get_data())["input"] == {"q": "?"}
