"""The worker side, run in-process through the same function the Celery task calls: claim,
the agent loop, tool calls through the proxy against a real local server, retries,
limits, cancellation, checkpoints."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from werkzeug import Request, Response

from controlplane.access import Actor
from controlplane.audit import audit_verify
from controlplane.models import AuditEvent
from executions import services
from executions.models import Execution, ExecutionAction, ExecutionStep
from executions.runtime import run_execution
from executions.trigger import TriggerRequest, execution_trigger
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_retries(settings: Any) -> None:
    settings.LLM_RETRY_BASE_SECONDS = 0.01
    settings.LLM_RETRY_MAX_SECONDS = 0.05
    settings.TOOL_RETRY_BASE_SECONDS = 0.01
    settings.TOOL_RETRY_MAX_SECONDS = 0.05
    settings.TOOL_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]


def start(agent: Any, user: Any, value: Any = None, **kwargs: Any) -> Execution:
    return execution_trigger(
        TriggerRequest(
            actor=Actor(user=user), agent=agent, input=value or {}, source="api", **kwargs
        )
    ).execution


def interrupted_at_call(execution: Execution, call: dict[str, Any], key: str) -> None:
    """The checkpoint a worker leaves when it dies after the model asked for ``call`` and
    before its result was fed back."""
    Execution.objects.filter(pk=execution.pk).update(
        checkpoint={
            "messages": [
                {"role": "user", "content": "Input:\n{}"},
                {"role": "assistant", "content": "", "tool_calls": [call]},
            ],
            "turn": 1,
            "pending": [{**call, "key": key}],
        }
    )


def run(execution: Execution) -> Execution:
    run_execution(execution_id=str(execution.pk), attempt=execution.attempt, worker="test@local")
    execution.refresh_from_db()
    return execution


class Recorder:
    """A local HTTP server's handler: answers 200 and keeps what it received."""

    def __init__(self, fail_first: int = 0, status: int = 503) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.status = status
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self.lock:
            self.requests.append(
                {"headers": dict(request.headers), "json": request.get_json(silent=True)}
            )
            if len(self.requests) <= self.fail_first:
                return Response("busy", status=self.status)
        return Response(json.dumps({"received": True}), content_type="application/json")

    def keys(self) -> list[str]:
        return [request["headers"].get("Idempotency-Key") for request in self.requests]


def webhook_agent(owner: Any, url: str, turns: int = 1, **simulation: Any) -> Any:
    return factories.runnable_agent(
        owner,
        name="hooker",
        tools=[{"name": "webhook_post", "config": {"url": url}}],
        llm={
            "simulation": {
                "turns": [
                    {"tool_calls": [{"name": "webhook_post", "arguments": {"payload": {"n": n}}}]}
                    for n in range(turns)
                ],
                "text": "All posted.",
                **simulation,
            }
        },
    )


def test_simulated_run_succeeds_with_steps_tokens_and_cost(owner: Any) -> None:
    agent = factories.runnable_agent(owner, llm={"simulation": {"text": "Hello there."}})
    execution = start(agent, owner, {"question": "hi"})

    execution = run(execution)

    assert execution.status == "success"
    assert execution.output == {"text": "Hello there."}
    assert execution.output_summary == "Hello there."
    [step] = execution.steps.all()
    assert step.kind == "llm_call" and step.status == "success"
    assert step.prompt_tokens > 0 and step.completion_tokens > 0
    assert execution.prompt_tokens == step.prompt_tokens
    assert execution.total_tokens == step.prompt_tokens + step.completion_tokens
    assert execution.estimated_cost_usd == Decimal("0")
    assert execution.llm_model == "simulated-1"
    assert (
        execution.started_at and execution.completed_at and execution.total_latency_ms is not None
    )
    actions = list(
        AuditEvent.objects.filter(target_id=str(execution.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["execution.created", "execution.running", "execution.success"]
    assert audit_verify().ok


def test_a_second_delivery_claims_nothing(owner: Any) -> None:
    agent = factories.runnable_agent(owner)
    execution = start(agent, owner)
    run(execution)

    again = run_execution(execution_id=str(execution.pk), attempt=1, worker="other")
    stale = run_execution(execution_id=str(execution.pk), attempt=0, worker="other")

    assert again is None and stale is None
    assert execution.steps.count() == 1
    assert AuditEvent.objects.filter(action="execution.running").count() == 1


def test_tools_go_through_the_proxy_with_idempotency_keys(owner: Any, httpserver: Any) -> None:
    recorder = Recorder()
    httpserver.expect_request("/hook", method="POST").respond_with_handler(recorder)
    agent = webhook_agent(owner, httpserver.url_for("/hook"), turns=2)

    execution = run(start(agent, owner))

    assert execution.status == "success", execution.error_message
    assert [request["json"] for request in recorder.requests] == [{"n": 0}, {"n": 1}]
    assert recorder.keys() == [f"{execution.pk}:1:0", f"{execution.pk}:2:0"]
    actions = list(execution.actions.order_by("started_at"))
    assert [(a.action, a.status, a.idempotency_key) for a in actions] == [
        ("webhook_post", "succeeded", f"{execution.pk}:1:0"),
        ("webhook_post", "succeeded", f"{execution.pk}:2:0"),
    ]
    kinds = list(execution.steps.values_list("kind", flat=True))
    assert kinds == ["llm_call", "tool_call", "llm_call", "tool_call", "llm_call"]
    assert (
        AuditEvent.objects.filter(action="tool.succeeded", target_id=str(execution.pk)).count() == 2
    )
    assert execution.checkpoint is None


def test_retryable_tool_errors_are_retried_with_the_same_key(owner: Any, httpserver: Any) -> None:
    recorder = Recorder(fail_first=2)
    httpserver.expect_request("/hook", method="POST").respond_with_handler(recorder)
    agent = webhook_agent(owner, httpserver.url_for("/hook"))

    execution = run(start(agent, owner))

    assert execution.status == "success"
    assert len(recorder.requests) == 3
    assert len(set(recorder.keys())) == 1
    assert execution.actions.get().attempts == 3


def test_a_failing_tool_is_a_tool_error_for_the_model_not_a_failed_run(
    owner: Any, httpserver: Any
) -> None:
    recorder = Recorder(fail_first=99, status=400)
    httpserver.expect_request("/hook", method="POST").respond_with_handler(recorder)
    agent = webhook_agent(owner, httpserver.url_for("/hook"))

    execution = run(start(agent, owner))

    assert execution.status == "success"
    assert len(recorder.requests) == 1  # a 400 is not retried
    action = execution.actions.get()
    assert action.status == "failed"
    assert "400" in action.error
    tool_message = [
        m for m in Execution.objects.get(pk=execution.pk).steps.filter(kind="tool_call")
    ]
    assert tool_message[0].status == "failed"


def test_a_call_the_tool_config_forbids_is_refused_and_never_sent(
    owner: Any, httpserver: Any
) -> None:
    agent = factories.runnable_agent(
        owner,
        name="slacker",
        tools=[{"name": "slack_notification", "config": {"allowed_channels": ["#ok"]}}],
        llm={
            "simulation": {
                "turns": [
                    {
                        "tool_calls": [
                            {
                                "name": "slack_notification",
                                "arguments": {"channel": "#secret", "text": "hi"},
                            }
                        ]
                    }
                ]
            }
        },
    )

    execution = run(start(agent, owner))

    assert execution.status == "success"
    action = execution.actions.get()
    assert action.status == "refused"
    assert "#secret" in action.error
    assert execution.steps.filter(kind="tool_call", status="refused").exists()
    assert AuditEvent.objects.filter(action="tool.refused").exists()


def test_provider_errors_are_retried_then_succeed(owner: Any) -> None:
    agent = factories.runnable_agent(
        owner, llm={"simulation": {"fail_times": 2, "fail_with": "rate_limited"}}
    )

    execution = run(start(agent, owner))

    assert execution.status == "success"
    assert execution.logs.filter(level="warn", message__contains="failed").count() == 2


def test_permanent_provider_error_fails_the_run_with_its_type(owner: Any) -> None:
    agent = factories.runnable_agent(
        owner, llm={"simulation": {"fail_times": 1, "fail_with": "bad_request"}}
    )

    execution = run(start(agent, owner))

    assert execution.status == "failed"
    assert execution.error_type == "llm_bad_request"
    assert execution.error_message
    assert execution.steps.get().status == "failed"


def test_retries_are_bounded(owner: Any, settings: Any) -> None:
    settings.LLM_MAX_ATTEMPTS = 3
    agent = factories.runnable_agent(
        owner, llm={"simulation": {"fail_times": 10, "fail_with": "overloaded"}}
    )

    execution = run(start(agent, owner))

    assert execution.status == "failed"
    assert execution.error_type == "llm_overloaded"
    assert execution.logs.filter(message__contains="failed").count() == 3


def test_max_turns_bounds_the_loop(owner: Any, httpserver: Any) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_handler(Recorder())
    agent = webhook_agent(owner, httpserver.url_for("/hook"), turns=5)
    agent.production_version.config["max_turns"] = 2
    agent.production_version.save()

    execution = run(start(agent, owner))

    assert execution.status == "failed"
    assert execution.error_type == "max_turns"


def test_timeout_is_enforced(owner: Any) -> None:
    agent = factories.runnable_agent(
        owner, timeout_seconds=1, llm={"simulation": {"latency_ms": 1500, "turns": [{}, {}]}}
    )

    execution = run(start(agent, owner))

    assert execution.status == "timed_out"
    assert execution.error_type == "timeout"


def test_output_schema_is_checked(owner: Any) -> None:
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
    good = factories.runnable_agent(
        owner,
        name="good",
        output_schema=schema,
        llm={"simulation": {"text": '```json\n{"score": 7}\n```'}},
    )
    bad = factories.runnable_agent(
        owner, name="bad", output_schema=schema, llm={"simulation": {"text": '{"score": "high"}'}}
    )

    assert run(start(good, owner)).output == {"score": 7}
    failed = run(start(bad, owner))
    assert failed.status == "failed"
    assert failed.error_type == "output_invalid"


def test_unknown_model_price_is_unknown_not_zero(owner: Any, settings: Any) -> None:
    agent = factories.runnable_agent(owner, llm={"model": "homebrew-7b"})

    execution = run(start(agent, owner))

    assert execution.status == "success"
    assert execution.estimated_cost_usd is None
    assert execution.steps.get().cost_usd is None


def test_cancel_before_it_runs(owner: Any) -> None:
    execution = start(factories.runnable_agent(owner), owner)

    cancelled = services.execution_cancel(actor=Actor(user=owner), execution=execution)

    assert cancelled.status == "cancelled"
    assert run_execution(execution_id=str(execution.pk), attempt=1) is None
    with pytest.raises(services.Conflict):
        services.execution_cancel(actor=Actor(user=owner), execution=cancelled)


@pytest.mark.django_db(transaction=True)
def test_cancel_while_running_stops_before_the_next_step() -> None:
    owner = factories.user("alice", role="operator")
    agent = factories.runnable_agent(
        owner, llm={"simulation": {"latency_ms": 700, "turns": [{}, {}, {}]}}
    )
    execution = start(agent, owner)
    worker = threading.Thread(
        target=lambda: (
            run_execution(execution_id=str(execution.pk), attempt=1),
            connection.close(),
        )
    )
    worker.start()
    deadline = time.monotonic() + 10
    while (
        Execution.objects.get(pk=execution.pk).status != "running" and time.monotonic() < deadline
    ):
        time.sleep(0.05)

    asked = services.execution_cancel(actor=Actor(user=owner), execution=execution)
    worker.join(timeout=30)

    assert asked.status == "running" and asked.cancel_requested
    execution.refresh_from_db()
    assert execution.status == "cancelled"
    assert execution.steps.count() <= 2


def test_resuming_from_a_checkpoint_does_not_repeat_done_actions(
    owner: Any, httpserver: Any
) -> None:
    """A worker died after the first tool call completed: its result is replayed, not resent."""
    recorder = Recorder()
    httpserver.expect_request("/hook", method="POST").respond_with_handler(recorder)
    agent = webhook_agent(owner, httpserver.url_for("/hook"), turns=2)
    execution = start(agent, owner)
    key = f"{execution.pk}:1:0"
    call = {"id": "sim_0_0", "name": "webhook_post", "arguments": {"payload": {"n": 0}}}
    interrupted_at_call(execution, call, key)
    ExecutionAction.objects.create(
        execution=execution,
        idempotency_key=key,
        action="webhook_post",
        status="succeeded",
        result={"status": 200},
        target="/hook",
        method="POST",
        started_at=execution.created_at,
    )

    execution = run(execution)

    assert execution.status == "success"
    assert [request["json"] for request in recorder.requests] == [{"n": 1}]
    assert execution.logs.filter(message__contains="already done, not repeated").exists()


def test_interrupted_non_idempotent_action_is_not_resent(owner: Any, settings: Any) -> None:
    agent = factories.runnable_agent(
        owner,
        name="mailer",
        tools=[{"name": "send_email", "config": {"allowed_domains": ["company.com"]}}],
        llm={
            "simulation": {
                "turns": [
                    {
                        "tool_calls": [
                            {
                                "name": "send_email",
                                "arguments": {
                                    "to": ["bob@company.com"],
                                    "subject": "hi",
                                    "body": "hello",
                                },
                            }
                        ]
                    }
                ]
            }
        },
    )
    execution = start(agent, owner)
    key = f"{execution.pk}:1:0"
    call = {
        "id": "sim_0_0",
        "name": "send_email",
        "arguments": {"to": ["bob@company.com"], "subject": "hi", "body": "hello"},
    }
    interrupted_at_call(execution, call, key)
    ExecutionAction.objects.create(
        execution=execution,
        idempotency_key=key,
        action="send_email",
        status="started",
        started_at=execution.created_at,
    )
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from django.core import mail

    execution = run(execution)

    assert execution.status == "success"
    assert mail.outbox == []
    action = execution.actions.get()
    assert action.status == "failed"
    assert "not sent again" in action.error


def test_step_records_carry_the_attempt(owner: Any) -> None:
    execution = run(start(factories.runnable_agent(owner), owner))

    assert set(execution.steps.values_list("attempt", flat=True)) == {1}
    assert ExecutionStep.objects.filter(execution=execution).count() == 1
