"""Approvals through their services, in process: who may decide, M of N, what each outcome
does to the run (at its start and at a tool call), expiry, warnings, cancellation, and the
exactly-once, exact-payload resume. Runs execute through the function the Celery task calls;
end to end with a real worker: test_e2e.py; races: test_races.py."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from approvals import services
from approvals.models import ApprovalDecision, ApprovalRequest
from controlplane.access import Actor
from controlplane.errors import Conflict, Forbidden, Invalid
from controlplane.models import AuditEvent
from executions import maintenance
from executions import services as execution_services
from executions.models import Execution, ExecutionAction, ExecutionStep
from tests import factories
from tests.approvals.factories import approval_policy, approval_request, pending_run
from tests.executions.test_runtime import Recorder, run, start

pytestmark = pytest.mark.django_db

A = ApprovalRequest.Status
S = Execution.Status


@pytest.fixture(autouse=True)
def local_tools(settings: Any) -> None:
    settings.TOOL_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    settings.TOOL_RETRY_BASE_SECONDS = 0.01


@pytest.fixture
def boss(db: Any) -> Any:
    return factories.user("boss", role="operator", email="boss@company.com")


def decide(user: Any, request: ApprovalRequest, verdict: str = "approve", notes: str = "") -> Any:
    return services.approval_decide(
        actor=Actor(user=user), request=request, verdict=verdict, notes=notes
    )


def hook_agent(owner: Any, url: str, **rules: Any) -> Any:
    """An agent that posts {"n": 1} to ``url`` with webhook_post, then answers; the call
    needs approval."""
    approval_policy(
        factories.user("policy-admin", role="admin"),
        "hooks-need-approval",
        require_approval_for=["webhook_post"],
        **rules,
    )
    return factories.runnable_agent(
        owner,
        name="poster",
        tools=[{"name": "webhook_post", "config": {"url": url}}],
        llm={
            "simulation": {
                "turns": [
                    {"tool_calls": [{"name": "webhook_post", "arguments": {"payload": {"n": 1}}}]}
                ],
                "text": "Posted.",
            }
        },
    )


def paused(agent: Any, user: Any) -> tuple[Execution, ApprovalRequest]:
    execution = run(start(agent, user))
    assert execution.status == S.PENDING_APPROVAL
    return execution, ApprovalRequest.objects.get(execution=execution)


# --- opening ----------------------------------------------------------------------------------


def test_a_trigger_under_an_approval_policy_opens_one_request_with_the_exact_input(
    owner: Any, boss: Any
) -> None:
    agent = factories.runnable_agent(owner)
    approval_policy(
        factories.user("root", role="admin"), auto_expire_hours=2, risk_threshold="high"
    )

    request = pending_run(agent, owner, {"mailbox": "inbox"})

    assert request.action == "execute"
    assert request.call_key == "execute"
    assert request.requested_action == {
        "action": "execute",
        "agent": agent.name,
        "version": "1.0.0",
        "input": {"mailbox": "inbox"},
    }
    assert request.action_hash == services.action_hash(request.requested_action)
    assert request.risk_level == "high"  # the policy's threshold lifts a low-risk start
    assert request.approvers == ["boss@company.com"]
    assert request.requested_by == owner
    assert request.on_reject == "cancel"
    assert (request.expires_at - request.created_at).total_seconds() == pytest.approx(7200, abs=5)
    event = AuditEvent.objects.get(action="approval.requested", target_id=str(request.pk))
    assert event.after["hash"] == request.action_hash


def test_opening_twice_for_the_same_call_returns_the_first(owner: Any) -> None:
    request = approval_request(owner)

    again = services.approval_open(
        execution_id=request.execution_id,
        agent_id=request.agent_id,
        requested_by_id=request.requested_by_id,
        requested_by_label=request.requested_by_label,
        decision=type("D", (), {"approval": {}, "policy_id": None, "policy_name": "x"})(),
        action="execute",
        call_key="execute",
        requested_action={"other": True},
    )

    assert again.pk == request.pk
    assert ApprovalRequest.objects.count() == 1


def test_risk_starts_from_the_action_and_a_budget_overrun_is_high() -> None:
    allow = type("D", (), {"policy_type": "approval_required"})()
    budget = type("D", (), {"policy_type": "cost_budget"})()
    assert services.risk_level("http_request", allow, {"risk_threshold": "low"}) == "low"
    assert services.risk_level("send_email", allow, {"risk_threshold": "low"}) == "medium"
    assert services.risk_level("external_api_post", allow, {"risk_threshold": "low"}) == "high"
    assert services.risk_level("http_request", allow, {"risk_threshold": "critical"}) == "critical"
    assert services.risk_level("execute", budget, {}) == "high"


# --- who may decide ---------------------------------------------------------------------------


def test_a_listed_approver_an_approver_group_member_and_an_admin_may_decide(
    owner: Any, boss: Any, admin_user: Any
) -> None:
    member = factories.user("carol", role="operator", teams=["finance"])
    request = approval_request(owner, approvers=["boss@company.com", "group:finance"])

    assert services.approval_refusal(Actor(user=boss), request) is None
    assert services.approval_refusal(Actor(user=member), request) is None
    assert services.approval_refusal(Actor(user=admin_user), request) is None


def test_everyone_else_is_refused_with_the_reason(owner: Any, boss: Any) -> None:
    request = approval_request(owner)
    stranger = factories.user("dave", role="operator")
    viewer = factories.user("vera", role="viewer", email="boss@company.com")

    assert "not an approver" in services.approval_refusal(Actor(user=stranger), request)
    assert "role may not" in services.approval_refusal(Actor(user=viewer), request)
    with pytest.raises(Forbidden):
        decide(stranger, request)
    request.refresh_from_db()
    assert request.status == A.PENDING
    assert not ApprovalDecision.objects.exists()


def test_the_user_who_triggered_the_run_may_not_approve_it(boss: Any) -> None:
    request = approval_request(boss)  # boss triggers a run that boss would approve

    with pytest.raises(Forbidden, match="You triggered this run"):
        decide(boss, request)


def test_self_approval_when_the_policy_allows_it(boss: Any) -> None:
    request = approval_request(boss, allow_self_approval=True)

    assert decide(boss, request).status == A.APPROVED


def test_an_admin_is_no_exception_to_the_self_approval_rule(admin_user: Any) -> None:
    request = approval_request(admin_user)

    with pytest.raises(Forbidden):
        decide(admin_user, request)


def test_an_approvers_api_key_of_a_role_that_may_not_decide_is_refused(
    owner: Any, boss: Any
) -> None:
    from controlplane.services import api_key_create

    request = approval_request(owner)
    key, _ = api_key_create(actor=Actor(user=boss), owner=boss, name="ro", role="viewer")

    assert "role may not" in services.approval_refusal(Actor(user=boss, api_key=key), request)


# --- deciding ---------------------------------------------------------------------------------


def test_approve_queues_the_run_and_records_who_and_why(owner: Any, boss: Any) -> None:
    request = approval_request(owner)

    done = decide(boss, request, notes="looks fine")

    assert done.status == A.APPROVED
    assert done.decided_by == "boss"
    assert done.review_notes == "looks fine"
    assert done.decided_at is not None
    execution = Execution.objects.get(pk=request.execution_id)
    assert execution.status == S.QUEUED
    assert [e["verdict"] for e in execution.policy_trace] == ["pass"]
    actions = list(
        AuditEvent.objects.filter(target_id=str(request.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["approval.requested", "approval.approve", "approval.approved"]
    assert run(execution).status == S.SUCCESS


def test_reject_cancels_a_run_that_waited_to_start(owner: Any, boss: Any) -> None:
    request = approval_request(owner)

    done = decide(boss, request, "reject", "not this week")

    assert done.status == A.REJECTED
    execution = Execution.objects.get(pk=request.execution_id)
    assert execution.status == S.CANCELLED
    assert execution.error_type == "approval_rejected"
    assert execution.error_message == "execute rejected by boss: not this week"


def test_m_of_n_needs_m_different_approvers(owner: Any, boss: Any) -> None:
    carol = factories.user("carol", role="operator", email="carol@company.com")
    request = approval_request(
        owner, approvers=["boss@company.com", "carol@company.com"], required_approvals=2
    )

    first = decide(boss, request)
    assert first.status == A.PENDING
    assert Execution.objects.get(pk=request.execution_id).status == S.PENDING_APPROVAL
    with pytest.raises(Conflict) as twice:
        decide(boss, request)
    assert twice.value.code == "approval_already_decided"

    second = decide(carol, request)

    assert second.status == A.APPROVED
    assert second.decided_by == "carol"
    assert Execution.objects.get(pk=request.execution_id).status == S.QUEUED
    assert request.decisions.count() == 2


def test_one_rejection_settles_an_m_of_n_request(owner: Any, boss: Any) -> None:
    carol = factories.user("carol", role="operator", email="carol@company.com")
    request = approval_request(
        owner, approvers=["boss@company.com", "carol@company.com"], required_approvals=2
    )
    decide(boss, request)

    assert decide(carol, request, "reject").status == A.REJECTED


def test_a_settled_request_answers_409_with_its_state(owner: Any, boss: Any) -> None:
    request = approval_request(owner)
    admin = factories.user("root", role="admin")
    decide(boss, request)

    with pytest.raises(Conflict) as late:
        decide(admin, request, "reject")

    assert late.value.code == "approval_not_pending"
    assert late.value.details == {"status": "approved", "decided_by": "boss"}
    assert Execution.objects.get(pk=request.execution_id).status == S.QUEUED


def test_bad_verdicts_and_notes_are_refused_before_anything_is_written(
    owner: Any, boss: Any
) -> None:
    request = approval_request(owner)

    with pytest.raises(Invalid):
        decide(boss, request, "maybe")
    with pytest.raises(Invalid):
        decide(boss, request, "approve", "x" * 5001)

    assert not ApprovalDecision.objects.exists()


def test_an_approved_start_is_decided_again_and_a_rate_limit_still_holds(
    owner: Any, boss: Any
) -> None:
    admin = factories.user("root", role="admin")
    agent = factories.runnable_agent(owner)
    approval_policy(admin)
    factories.policy(
        admin, "one-an-hour", "rate_limit", {"max_executions": 1, "window_minutes": 60}
    )
    first, second = pending_run(agent, owner), pending_run(agent, owner)

    decide(boss, first)
    decide(boss, second)

    assert Execution.objects.get(pk=first.execution_id).status == S.QUEUED
    refused = Execution.objects.get(pk=second.execution_id)
    assert refused.status == S.RATE_LIMITED
    assert refused.error_message == "one-an-hour: 1 runs per 60 min reached"


def test_an_approved_budget_overrun_runs_and_its_cost_is_counted(owner: Any, settings: Any) -> None:
    from policies import counters

    settings.LLM_PRICES = {"sim-priced": {"input": 1000.0, "output": 1000.0}}
    admin = factories.user("root", role="admin")
    agent = factories.runnable_agent(owner, llm={"model": "sim-priced"})
    budget = factories.policy(
        admin,
        "tiny",
        "cost_budget",
        {"max_cost_usd": 0.000001, "period": "day", "action": "require_approval"},
    )
    request = pending_run(agent, owner)
    assert request.risk_level == "high"
    assert request.approvers == []  # no approval policy: admins decide

    decide(admin, request)

    execution = run(Execution.objects.get(pk=request.execution_id))
    assert execution.status == S.SUCCESS
    assert [r["kind"] for r in execution.policy_reservations] == ["budget"]
    execution_services._release(execution.pk)  # what the commit of its end does
    key = execution.policy_reservations[0]["key"]
    assert key.startswith(f"{counters.PREFIX}:{budget.pk}:budget:")
    reserved, spent = counters.budget_state(key)
    assert spent == int(execution.estimated_cost_usd * 1_000_000) > 0
    assert reserved == 0


def test_an_approved_start_waiting_for_a_slot_is_not_asked_again_when_dispatched(
    owner: Any, boss: Any
) -> None:
    admin = factories.user("root", role="admin")
    agent = factories.runnable_agent(owner)
    factories.policy(admin, "one-at-a-time", "concurrency", {"max_running": 1}, agent=agent)
    busy = start(agent, owner)  # holds the slot (before the approval policy exists)
    approval_policy(admin, priority=10)
    request = pending_run(agent, owner)

    decide(boss, request)
    waiting = Execution.objects.get(pk=request.execution_id)
    assert waiting.status == S.SCHEDULED
    assert run(busy).status == S.SUCCESS
    execution_services._release(busy.pk)  # what the commit of its end would do

    maintenance.dispatch_due(timezone.now() + timedelta(seconds=10))

    waiting.refresh_from_db()
    assert waiting.status == S.QUEUED  # not pending_approval a second time
    assert ApprovalRequest.objects.filter(execution=waiting).count() == 1


# --- at a tool call ---------------------------------------------------------------------------


def test_an_approved_call_runs_once_with_the_shown_payload_and_the_run_goes_on(
    owner: Any, boss: Any, httpserver: Any
) -> None:
    hook = Recorder()
    httpserver.expect_request("/hook", method="POST").respond_with_handler(hook)
    agent = hook_agent(owner, httpserver.url_for("/hook"))
    execution, request = paused(agent, owner)
    assert request.action == "webhook_post"
    assert request.requested_action == {
        "action": "webhook_post",
        "destination": "webhook",
        "target": httpserver.url_for("/hook"),
        "arguments": {"payload": {"n": 1}},
    }
    assert request.risk_level == "high"
    assert request.on_reject == "tool_error"
    assert hook.requests == []
    assert execution.deadline_at is None
    assert 0 < execution.checkpoint["time_left"] <= 300

    decide(boss, request, notes="go")
    execution.refresh_from_db()
    assert execution.status == S.QUEUED
    done = run(execution)

    assert done.status == S.SUCCESS
    assert [r["json"] for r in hook.requests] == [{"n": 1}]
    action = ExecutionAction.objects.get(execution=done)
    assert (action.status, action.auto_approved) == ("succeeded", False)
    steps = list(done.steps.values_list("kind", "status"))
    assert steps == [
        ("llm_call", "success"),
        ("approval", "success"),
        ("tool_call", "success"),
        ("llm_call", "success"),
    ]
    assert run(done).status == S.SUCCESS  # a stale message claims nothing
    assert len(hook.requests) == 1


def test_a_rejected_call_is_a_tool_error_for_the_model_and_the_run_goes_on(
    owner: Any, boss: Any, httpserver: Any
) -> None:
    hook = Recorder()
    httpserver.expect_request("/hook", method="POST").respond_with_handler(hook)
    agent = hook_agent(owner, httpserver.url_for("/hook"))
    execution, request = paused(agent, owner)

    decide(boss, request, "reject", "not to that hook")
    done = run(Execution.objects.get(pk=execution.pk))

    assert done.status == S.SUCCESS
    assert hook.requests == []
    action = ExecutionAction.objects.get(execution=done)
    assert action.status == "refused"
    assert action.error == "rejected by boss: not to that hook"
    tool_step = done.steps.get(kind=ExecutionStep.Kind.TOOL_CALL)
    assert tool_step.detail["error"] == "rejected by boss: not to that hook"


def test_a_rejected_call_cancels_the_run_when_the_policy_says_so(
    owner: Any, boss: Any, httpserver: Any
) -> None:
    agent = hook_agent(owner, httpserver.url_for("/hook"), on_reject="cancel")
    execution, request = paused(agent, owner)

    decide(boss, request, "reject")

    execution.refresh_from_db()
    assert execution.status == S.CANCELLED
    assert execution.error_message == "webhook_post rejected by boss."
    assert not ExecutionAction.objects.filter(execution=execution).exists()


def test_a_payload_changed_after_approval_is_not_sent(
    owner: Any, boss: Any, httpserver: Any
) -> None:
    hook = Recorder()
    httpserver.expect_request("/hook", method="POST").respond_with_handler(hook)
    agent = hook_agent(owner, httpserver.url_for("/hook"))
    execution, request = paused(agent, owner)
    checkpoint = execution.checkpoint
    checkpoint["pending"][0]["arguments"] = {"payload": {"n": 2}}  # tampered while waiting
    Execution.objects.filter(pk=execution.pk).update(checkpoint=checkpoint)

    decide(boss, request)
    done = run(Execution.objects.get(pk=execution.pk))

    assert hook.requests == []
    action = ExecutionAction.objects.get(execution=done)
    assert action.status == "refused"
    assert "not the one that was approved" in action.error


def test_the_resumed_run_gets_back_the_time_it_had_left(
    owner: Any, boss: Any, httpserver: Any
) -> None:
    agent = hook_agent(owner, httpserver.url_for("/hook"))
    execution, request = paused(agent, owner)
    checkpoint = {**execution.checkpoint, "time_left": 42.0}
    Execution.objects.filter(pk=execution.pk).update(checkpoint=checkpoint)
    # An hour passed: the original deadline would have gone by.
    ApprovalRequest.objects.filter(pk=request.pk).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    decide(boss, request)

    from executions.runtime import run_execution

    claimed_at = timezone.now()
    run_execution(execution_id=str(execution.pk), attempt=1, worker="test")
    execution.refresh_from_db()

    assert execution.status == S.SUCCESS
    assert execution.deadline_at - claimed_at == pytest.approx(
        timedelta(seconds=42), abs=timedelta(seconds=2)
    )


# --- expiry, warnings, cancellation -----------------------------------------------------------


def test_an_overdue_request_expires_and_so_does_its_run(owner: Any) -> None:
    request = approval_request(owner, auto_expire_hours=1)

    assert services.approval_expire_due(timezone.now()) == 0
    assert services.approval_expire_due(timezone.now() + timedelta(hours=1, seconds=1)) == 1

    request.refresh_from_db()
    assert (request.status, request.decided_by) == (A.EXPIRED, "system")
    execution = Execution.objects.get(pk=request.execution_id)
    assert execution.status == S.EXPIRED
    assert execution.error_type == "approval_expired"
    assert AuditEvent.objects.filter(action="approval.expired", target_id=str(request.pk)).exists()
    assert services.approval_expire_due(timezone.now() + timedelta(hours=2)) == 0


def test_on_expire_approve_lets_the_run_go(owner: Any) -> None:
    request = approval_request(owner, auto_expire_hours=1, on_expire="approve")

    services.approval_expire_due(timezone.now() + timedelta(hours=2))

    request.refresh_from_db()
    assert request.status == A.EXPIRED
    assert request.decided_by == "system (approved on expiry)"
    assert Execution.objects.get(pk=request.execution_id).status == S.QUEUED


def test_an_expired_call_leaves_its_run_expired(owner: Any, httpserver: Any) -> None:
    agent = hook_agent(owner, httpserver.url_for("/hook"), auto_expire_hours=0.5)
    execution, request = paused(agent, owner)

    services.approval_expire_due(timezone.now() + timedelta(hours=1))

    execution.refresh_from_db()
    assert execution.status == S.EXPIRED
    assert execution.steps.get(kind="approval").status == "refused"
    request.refresh_from_db()
    assert request.status == A.EXPIRED


def test_a_warning_goes_out_once_before_expiry(
    owner: Any, django_capture_on_commit_callbacks: Any
) -> None:
    request = approval_request(owner, auto_expire_hours=2, warn_before_minutes=30)
    assert request.warn_at == request.expires_at - timedelta(minutes=30)

    assert services.approval_warn_due(timezone.now()) == 0
    later = request.warn_at + timedelta(seconds=1)
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.approval_warn_due(later) == 1
    assert services.approval_warn_due(later) == 0
    assert len(callbacks) == 1
    request.refresh_from_db()
    assert request.warned_at == later


def test_cancelling_a_waiting_run_cancels_its_request(owner: Any) -> None:
    request = approval_request(owner)

    execution_services.execution_cancel(actor=Actor(user=owner), execution=request.execution)

    request.refresh_from_db()
    assert request.status == A.CANCELLED
    assert request.decided_by == "alice"
    assert Execution.objects.get(pk=request.execution_id).status == S.CANCELLED
    with pytest.raises(Conflict):
        decide(factories.user("boss", role="operator", email="boss@company.com"), request)


def test_a_group_approver_is_found_by_membership_not_by_name(owner: Any) -> None:
    Group.objects.get_or_create(name="finance")
    request = approval_request(owner, approvers=["group:finance"])
    outsider = factories.user("finance", role="operator")  # named like the group, not in it

    assert services.approval_refusal(Actor(user=outsider), request) is not None


def test_budget_settles_nothing_for_a_request_that_was_never_approved(owner: Any) -> None:
    request = approval_request(owner)
    execution = Execution.objects.get(pk=request.execution_id)

    assert execution.policy_reservations == []
    assert execution.estimated_cost_usd == Decimal(0)


def test_the_execution_detail_lists_its_approval_requests(
    owner: Any, boss: Any, api_for: Any
) -> None:
    request = approval_request(owner)
    decide(boss, request, "reject")

    body = api_for(owner).get(f"/api/v1/executions/{request.execution_id}").json()

    assert body["status"] == "cancelled"
    assert body["approvals"] == [
        {
            "approval_id": str(request.pk),
            "action": "execute",
            "status": "rejected",
            "risk_level": "medium",
            "expires_at": body["approvals"][0]["expires_at"],
            "decided_by": "boss",
        }
    ]
    assert body["approvals"][0]["expires_at"].startswith(str(request.expires_at.date()))
