"""Approvals end to end with a real Celery worker: a run held at its start and one paused at a
tool call are approved through the API and finish on the worker (the approved action sent
once); a rejection both ways; expiry by the maintenance task; the notifications by e-mail to
a real SMTP server and to a Slack webhook that fails before it works."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from approvals.models import ApprovalRequest
from controlplane.celery import app as celery_app
from controlplane.models import AuditEvent
from executions.models import Execution
from tests import factories
from tests.approvals.factories import approval_policy
from tests.executions.test_e2e import status_of, wait_for
from tests.executions.test_runtime import Recorder
from tests.integrations.test_tools_email import Mailbox, free_port
from tests.processes import celery_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TRIGGER = "/api/v1/executions/trigger"


def smtp_env(port: int, **extra: str) -> dict[str, str]:
    return {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "DEFAULT_FROM_EMAIL": "controlplane@company.com",
        "TOOL_ALLOWED_PRIVATE_NETWORKS": "127.0.0.1/32",
        "PUBLIC_BASE_URL": "http://cp.example.com",
        **extra,
    }


def mail_to(box: Mailbox, address: str) -> list[Any]:
    return [r.message for r in box.received if address in r.rcpt_tos]


def request_of(execution_id: str) -> ApprovalRequest:
    return ApprovalRequest.objects.get(execution_id=execution_id)


def poster(owner: Any, url: str) -> Any:
    return factories.runnable_agent(
        owner,
        name="poster",
        tools=[{"name": "webhook_post", "config": {"url": url}}],
        llm={
            "simulation": {
                "turns": [
                    {
                        "tool_calls": [
                            {"name": "webhook_post", "arguments": {"payload": {"invoice": 7}}}
                        ]
                    }
                ],
                "text": "Posted.",
            }
        },
    )


def test_a_run_held_at_its_start_is_approved_in_the_api_and_finishes_on_the_worker(
    mailbox: tuple[Mailbox, int],
) -> None:
    box, port = mailbox
    owner = factories.user("alice", role="operator")
    boss = factories.user("boss", role="operator", email="boss@company.com")
    agent = factories.runnable_agent(owner)
    approval_policy(factories.user("root", role="admin"))

    with celery_worker(env=smtp_env(port)):
        answer = factories.api_client(owner).post(
            TRIGGER, {"agent": agent.name, "input": {"q": 1}}, format="json"
        )
        assert answer.status_code == 202, answer.content
        execution_id = answer.json()["execution_id"]
        assert answer.json()["status"] == "pending_approval"
        wait_for(lambda: mail_to(box, "boss@company.com"), 20, "the approvers' e-mail")
        request = request_of(execution_id)
        asked = mail_to(box, "boss@company.com")[0]
        assert "Approval needed (medium risk): execute for runner" in asked["Subject"]
        assert f"http://cp.example.com/approvals/{request.pk}/" in asked.get_payload()

        decided = factories.api_client(boss).post(
            f"/api/v1/approvals/{request.pk}/approve", {"notes": "ok"}, format="json"
        )
        assert decided.status_code == 200, decided.content
        wait_for(lambda: status_of(execution_id) == "success", 30, "the approved run")
        wait_for(lambda: mail_to(box, "alice@company.com"), 20, "the requester's e-mail")

    told = mail_to(box, "alice@company.com")[0]
    assert told["Subject"] == "execute for runner: approved"
    assert "approved by boss: ok" in told.get_payload()
    actions = set(
        AuditEvent.objects.filter(target_id=str(request.pk)).values_list("action", flat=True)
    )
    assert {"approval.requested", "approval.approve", "approval.approved"} <= actions
    assert "approval.notified" in actions


def test_a_call_held_mid_run_resumes_on_approval_and_is_sent_exactly_once(
    httpserver: Any,
) -> None:
    hook = Recorder()
    httpserver.expect_request("/hook", method="POST").respond_with_handler(hook)
    owner = factories.user("alice", role="operator")
    boss = factories.user("boss", role="operator", email="boss@company.com")
    agent = poster(owner, httpserver.url_for("/hook"))
    approval_policy(
        factories.user("root", role="admin"), "hooks", require_approval_for=["webhook_post"]
    )

    with celery_worker(env=smtp_env(free_port())):
        execution_id = (
            factories.api_client(owner)
            .post(TRIGGER, {"agent": agent.name}, format="json")
            .json()["execution_id"]
        )
        wait_for(lambda: status_of(execution_id) == "pending_approval", 30, "the pause")
        execution = Execution.objects.get(pk=execution_id)
        assert execution.worker == ""  # the worker was freed
        request = request_of(execution_id)
        assert request.requested_action["arguments"] == {"payload": {"invoice": 7}}
        assert hook.requests == []

        client = factories.api_client(boss)
        first = client.post(f"/api/v1/approvals/{request.pk}/approve", format="json")
        second = client.post(f"/api/v1/approvals/{request.pk}/approve", format="json")
        assert (first.status_code, second.status_code) == (200, 409)
        wait_for(lambda: status_of(execution_id) == "success", 30, "the resumed run")

    assert [r["json"] for r in hook.requests] == [{"invoice": 7}]
    execution = Execution.objects.get(pk=execution_id)
    assert execution.output == {"text": "Posted."}
    assert execution.steps.filter(kind="llm_call").count() == 2  # the first turn not asked again
    assert execution.actions.get().auto_approved is False


@pytest.mark.parametrize(
    ("on_reject", "final"), [("tool_error", "success"), ("cancel", "cancelled")]
)
def test_a_rejected_call_is_never_sent_and_the_run_ends_as_the_policy_says(
    httpserver: Any, on_reject: str, final: str
) -> None:
    hook = Recorder()
    httpserver.expect_request("/hook", method="POST").respond_with_handler(hook)
    owner = factories.user("alice", role="operator")
    boss = factories.user("boss", role="operator", email="boss@company.com")
    agent = poster(owner, httpserver.url_for("/hook"))
    approval_policy(
        factories.user("root", role="admin"),
        "hooks",
        require_approval_for=["webhook_post"],
        on_reject=on_reject,
    )

    with celery_worker(env=smtp_env(free_port())):
        execution_id = (
            factories.api_client(owner)
            .post(TRIGGER, {"agent": agent.name}, format="json")
            .json()["execution_id"]
        )
        wait_for(lambda: status_of(execution_id) == "pending_approval", 30, "the pause")
        request = request_of(execution_id)
        answer = factories.api_client(boss).post(
            f"/api/v1/approvals/{request.pk}/reject", {"notes": "wrong invoice"}, format="json"
        )
        assert answer.status_code == 200, answer.content
        wait_for(lambda: status_of(execution_id) == final, 30, f"the run to end {final}")

    assert hook.requests == []
    execution = Execution.objects.get(pk=execution_id)
    if on_reject == "tool_error":
        assert execution.actions.get().error == "rejected by boss: wrong invoice"
    else:
        assert execution.error_message == "webhook_post rejected by boss: wrong invoice"


def test_the_maintenance_task_expires_an_overdue_request_and_its_run() -> None:
    owner = factories.user("alice", role="operator")
    agent = factories.runnable_agent(owner)
    approval_policy(factories.user("root", role="admin"))
    execution_id = (
        factories.api_client(owner)
        .post(TRIGGER, {"agent": agent.name}, format="json")
        .json()["execution_id"]
    )
    request = request_of(execution_id)
    ApprovalRequest.objects.filter(pk=request.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    with celery_worker(env=smtp_env(free_port())):
        celery_app.send_task("approvals.tasks.maintenance_approvals", queue="maintenance")
        wait_for(lambda: status_of(execution_id) == "expired", 30, "the expiry")

    request.refresh_from_db()
    assert request.status == "expired"


def test_a_failing_notification_is_retried_and_never_blocks_the_request(
    httpserver: Any,
) -> None:
    slack = Recorder(fail_first=2, status=500)
    httpserver.expect_request("/slack", method="POST").respond_with_handler(slack)
    owner = factories.user("alice", role="operator")
    boss = factories.user("boss", role="operator", email="boss@company.com")
    agent = factories.runnable_agent(owner)
    approval_policy(factories.user("root", role="admin"))
    closed = free_port()  # nothing listens: every e-mail fails

    env = smtp_env(
        closed,
        APPROVALS_SLACK_WEBHOOK_URL=httpserver.url_for("/slack"),
        APPROVAL_NOTIFY_RETRY_SECONDS="0.2",
        APPROVAL_NOTIFY_MAX_RETRIES="3",
    )
    with celery_worker(env=env):
        execution_id = (
            factories.api_client(owner)
            .post(TRIGGER, {"agent": agent.name}, format="json")
            .json()["execution_id"]
        )
        request = request_of(execution_id)
        assert request.status == "pending"  # there before any notification was tried
        wait_for(lambda: len(slack.requests) >= 3, 30, "the third Slack attempt")
        decided = factories.api_client(boss).post(
            f"/api/v1/approvals/{request.pk}/approve", format="json"
        )
        assert decided.status_code == 200
        wait_for(lambda: status_of(execution_id) == "success", 30, "the run")

        def failures() -> list[dict[str, Any]]:
            return list(
                AuditEvent.objects.filter(
                    target_id=str(request.pk), action="approval.notify_failed"
                )
                .order_by("id")
                .values_list("after", flat=True)
            )

        wait_for(lambda: any(not f["will_retry"] for f in failures()), 30, "the last e-mail")

    assert (
        "*Approval needed (medium risk): execute for runner*" in slack.requests[0]["json"]["text"]
    )
    sent = AuditEvent.objects.filter(
        target_id=str(request.pk), action="approval.notified"
    ).order_by("id")
    assert [(e.after["event"], e.after["channel"]) for e in sent][:1] == [("requested", "slack")]
    slack_failures = [
        f for f in failures() if f["channel"] == "slack" and f["event"] == "requested"
    ]
    assert [f["attempt"] for f in slack_failures] == [1, 2]
    email_failures = [
        f for f in failures() if f["channel"] == "email" and f["event"] == "requested"
    ]
    assert [f["attempt"] for f in email_failures] == [1, 2, 3, 4]
    assert email_failures[-1]["will_retry"] is False
