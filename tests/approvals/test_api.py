"""The approvals API: the queue each role sees and its filters, one request with everything
about it (and whether the caller may decide it), approve and reject through
``approvals.services`` (the run goes on or is cancelled; M of N; self-approval; 409 for a
second decision), and bad input answered in the error envelope, never with a 500.

The cast: alice (operator, team-a) owns and triggers ``runner``; bob (team-a) may see it;
charlie (team-b) owns ``their-runner``; boss (no team) approves runner's requests by
e-mail; finn approves their-runner's through the group ``finance``; vera is a viewer of
team-a; root an admin."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import Agent
from approvals import services
from approvals.models import ApprovalDecision, ApprovalRequest
from controlplane.access import Actor
from controlplane.models import AuditEvent
from executions.models import Execution
from tests import factories
from tests.api import assert_error, field_errors
from tests.approvals.factories import pending_run
from tests.executions.test_runtime import run, start

pytestmark = pytest.mark.django_db

URL = "/api/v1/approvals"
A = ApprovalRequest.Status
S = Execution.Status
EMAIL = {"to": ["bob@company.com"], "subject": "hi", "body": "hello"}


def detail(request: ApprovalRequest) -> str:
    return f"{URL}/{request.pk}"


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["approval_id"] for item in response.json()["results"]]


def key(request: ApprovalRequest) -> str:
    return str(request.pk)


def approval_policy_for(agent: Agent, by: Any, **rules: Any) -> Any:
    return factories.policy(
        by,
        f"sign-off-{agent.name}",
        "approval_required",
        {"require_approval_for": ["execute"], **rules},
        agent=agent,
    )


@pytest.fixture
def boss(db: Any) -> Any:
    return factories.user("boss", role="operator", email="boss@company.com")


@pytest.fixture
def finn(db: Any) -> Any:
    return factories.user("finn", role="operator", teams=["finance"])


@pytest.fixture
def runner(owner: Any, other: Any, admin_user: Any) -> Agent:
    """alice's agent, shared with team-a: boss approves its runs (high risk)."""
    agent = factories.runnable_agent(owner, name="runner", team="team-a")
    approval_policy_for(agent, admin_user, approvers=["boss@company.com"], risk_threshold="high")
    return agent


@pytest.fixture
def their_runner(outsider: Any, admin_user: Any) -> Agent:
    """charlie's agent: the group finance approves its runs (medium risk, the default)."""
    agent = factories.runnable_agent(outsider, name="their-runner", team="team-b")
    approval_policy_for(agent, admin_user, approvers=["group:finance"])
    return agent


@pytest.fixture
def queue(
    runner: Agent, their_runner: Agent, owner: Any, outsider: Any, admin_user: Any
) -> dict[str, ApprovalRequest]:
    """Two pending requests (alice's run of runner, then charlie's of their-runner) and a
    rejected one (an earlier run of runner)."""
    rejected = pending_run(runner, owner)
    services.approval_decide(
        actor=Actor(user=admin_user), request=rejected, verdict="reject", notes="not now"
    )
    return {
        "mine": pending_run(runner, owner),
        "theirs": pending_run(their_runner, outsider),
        "rejected": rejected,
    }


def approve(client: Any, request: ApprovalRequest, body: Any = None) -> Any:
    return client.post(f"{detail(request)}/approve", body or {}, format="json")


def reject(client: Any, request: ApprovalRequest, body: Any = None) -> Any:
    return client.post(f"{detail(request)}/reject", body or {}, format="json")


def run_status(request: ApprovalRequest) -> str:
    return Execution.objects.get(pk=request.execution_id).status


# --- who sees what -------------------------------------------------------------------------


def test_admin_sees_every_request_pending_first_expiring_soonest(
    queue: dict[str, ApprovalRequest], admin_user: Any, api_for: Any
) -> None:
    response = api_for(admin_user).get(URL)

    assert ids(response) == [key(queue["mine"]), key(queue["theirs"]), key(queue["rejected"])]
    assert response.json()["count"] == 3


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("owner", ["mine", "rejected"]),  # her agent
        ("other", ["mine", "rejected"]),  # his team's agent
        ("outsider", ["theirs"]),  # his own agent only
        ("boss", ["mine", "rejected"]),  # listed as an approver, no right on the agent
        ("finn", ["theirs"]),  # listed through the group finance
        ("viewer", ["mine", "rejected"]),  # reads her team's
    ],
)
def test_others_see_the_requests_of_agents_they_may_view_and_those_they_approve(
    queue: dict[str, ApprovalRequest],
    api_for: Any,
    request: pytest.FixtureRequest,
    who: str,
    expected: list[str],
) -> None:
    client = api_for(request.getfixturevalue(who))

    assert ids(client.get(URL)) == [key(queue[name]) for name in expected]


def test_a_service_account_may_not_read_approvals(
    queue: dict[str, ApprovalRequest], api_for: Any
) -> None:
    client = api_for(factories.user("svc", role="agent-service"))

    assert_error(client.get(URL), 403, "permission_denied")
    assert_error(client.get(detail(queue["mine"])), 403, "permission_denied")
    assert_error(approve(client, queue["mine"]), 403, "permission_denied")
    assert queue["mine"].decisions.count() == 0


def test_anonymous_is_401(queue: dict[str, ApprovalRequest], api_for: Any) -> None:
    assert_error(api_for(None).get(URL), 401, "not_authenticated")
    assert_error(approve(api_for(None), queue["mine"]), 401, "not_authenticated")


def test_the_list_is_paginated(
    queue: dict[str, ApprovalRequest], admin_user: Any, api_for: Any
) -> None:
    client = api_for(admin_user)

    first = client.get(URL, {"page_size": 2})
    second = client.get(URL, {"page_size": 2, "page": 2})

    assert ids(first) == [key(queue["mine"]), key(queue["theirs"])]
    assert first.json()["count"] == 3
    assert first.json()["next"] and first.json()["previous"] is None
    assert ids(second) == [key(queue["rejected"])]
    assert second.json()["next"] is None


# --- filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "pending"}, ["mine", "theirs"]),
        ({"status": "rejected"}, ["rejected"]),
        ({"status": "rejected,pending"}, ["mine", "theirs", "rejected"]),
        ({"status": "approved"}, []),
        ({"agent": "runner"}, ["mine", "rejected"]),
        ({"agent": "their-runner"}, ["theirs"]),
        ({"agent": "no-such-agent"}, []),
        ({"risk": "high"}, ["mine", "rejected"]),
        ({"risk": "medium"}, ["theirs"]),
        ({"risk": "low,medium"}, ["theirs"]),
        ({"action": "execute"}, ["mine", "theirs", "rejected"]),
        ({"action": "send_email"}, []),
        ({"status": "pending", "agent": "runner", "risk": "high"}, ["mine"]),
    ],
)
def test_filters(
    queue: dict[str, ApprovalRequest],
    admin_user: Any,
    api_for: Any,
    query: dict[str, str],
    expected: list[str],
) -> None:
    response = api_for(admin_user).get(URL, query)

    assert ids(response) == [key(queue[name]) for name in expected]


def test_agent_filter_takes_an_id(
    queue: dict[str, ApprovalRequest], their_runner: Agent, admin_user: Any, api_for: Any
) -> None:
    response = api_for(admin_user).get(URL, {"agent": str(their_runner.pk)})

    assert ids(response) == [key(queue["theirs"])]


def test_execution_filter(queue: dict[str, ApprovalRequest], admin_user: Any, api_for: Any) -> None:
    response = api_for(admin_user).get(URL, {"execution": str(queue["rejected"].execution_id)})

    assert ids(response) == [key(queue["rejected"])]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"execution": "not-a-uuid"}, "execution"),
        ({"status": "maybe"}, "status"),
        ({"risk": "extreme"}, "risk"),
        ({"assigned": "you"}, "assigned"),
    ],
)
def test_a_bad_filter_value_is_400(
    queue: dict[str, ApprovalRequest],
    admin_user: Any,
    api_for: Any,
    query: dict[str, str],
    field: str,
) -> None:
    response = api_for(admin_user).get(URL, query)

    assert_error(response, 400, "validation_error")
    assert field in field_errors(response)


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("boss", ["mine", "rejected"]),
        ("finn", ["theirs"]),
        ("owner", []),  # sees runner's requests, but approves none of them
        ("admin_user", []),  # every request lists its approvers
    ],
)
def test_assigned_to_me_lists_the_requests_naming_the_caller_as_approver(
    queue: dict[str, ApprovalRequest],
    api_for: Any,
    request: pytest.FixtureRequest,
    who: str,
    expected: list[str],
) -> None:
    client = api_for(request.getfixturevalue(who))

    assert ids(client.get(URL, {"assigned": "me"})) == [key(queue[name]) for name in expected]


def test_assigned_to_me_with_status_pending_is_the_callers_to_do_list(
    queue: dict[str, ApprovalRequest], boss: Any, api_for: Any
) -> None:
    response = api_for(boss).get(URL, {"assigned": "me", "status": "pending"})

    assert ids(response) == [key(queue["mine"])]


def test_assigned_to_me_gives_an_admin_the_requests_that_list_nobody(
    runner: Agent, owner: Any, admin_user: Any, api_for: Any
) -> None:
    nobody = factories.runnable_agent(owner, name="unlisted", team="team-a")
    approval_policy_for(nobody, admin_user, approvers=[])
    unlisted = pending_run(nobody, owner)
    pending_run(runner, owner)  # lists boss

    assert ids(api_for(admin_user).get(URL, {"assigned": "me"})) == [key(unlisted)]


def test_action_filter_finds_a_tool_call_waiting_for_approval(
    queue: dict[str, ApprovalRequest], owner: Any, admin_user: Any, api_for: Any
) -> None:
    mailer = factories.runnable_agent(
        owner,
        name="mailer",
        tools=[{"name": "send_email", "config": {"allowed_domains": ["company.com"]}}],
        llm={
            "simulation": {
                "turns": [{"tool_calls": [{"name": "send_email", "arguments": EMAIL}]}],
                "text": "Done.",
            }
        },
    )
    factories.policy(
        admin_user,
        "email-approval",
        "approval_required",
        {"require_approval_for": ["send_email"], "approvers": ["boss@company.com"]},
        agent=mailer,
    )
    execution = run(start(mailer, owner))
    assert execution.status == S.PENDING_APPROVAL

    response = api_for(admin_user).get(URL, {"action": "send_email"})

    [item] = response.json()["results"]
    assert (item["agent_name"], item["action"], item["execution_id"]) == (
        "mailer",
        "send_email",
        str(execution.pk),
    )
    assert item["requested_action"]["arguments"] == EMAIL


# --- one request ---------------------------------------------------------------------------


def test_get_one_has_everything_about_the_request(
    queue: dict[str, ApprovalRequest], runner: Agent, boss: Any, api_for: Any
) -> None:
    request = queue["mine"]

    response = api_for(boss).get(detail(request))

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {
        "approval_id",
        "execution_id",
        "execution_status",
        "agent_id",
        "agent_name",
        "policy_id",
        "policy_name",
        "action",
        "call_key",
        "requested_action",
        "action_hash",
        "reason",
        "risk_level",
        "status",
        "approvers",
        "required_approvals",
        "approvals",
        "allow_self_approval",
        "on_reject",
        "on_expire",
        "requested_by",
        "created_at",
        "expires_at",
        "decided_by",
        "decided_at",
        "review_notes",
        "decisions",
        "can_decide",
        "refusal",
    }
    assert body["approval_id"] == str(request.pk)
    assert body["execution_id"] == str(request.execution_id)
    assert body["execution_status"] == "pending_approval"
    assert (body["agent_id"], body["agent_name"]) == (str(runner.pk), "runner")
    assert (body["policy_id"], body["policy_name"]) == (str(request.policy_id), "sign-off-runner")
    assert (body["action"], body["call_key"], body["risk_level"]) == ("execute", "execute", "high")
    assert body["requested_action"] == request.requested_action
    assert body["action_hash"] == services.action_hash(body["requested_action"])
    assert (body["status"], body["approvers"]) == ("pending", ["boss@company.com"])
    assert (body["required_approvals"], body["approvals"]) == (1, 0)
    assert body["requested_by"] == "alice"
    assert body["expires_at"] and body["created_at"]
    assert (body["decided_by"], body["decided_at"], body["review_notes"]) == ("", None, "")
    assert body["decisions"] == []
    assert (body["can_decide"], body["refusal"]) == (True, None)


@pytest.mark.parametrize(
    ("who", "refusal"),
    [
        ("owner", "You are not an approver of this request (boss@company.com)."),
        ("other", "You are not an approver of this request (boss@company.com)."),
        ("viewer", "Your role may not approve or reject requests."),
    ],
)
def test_get_one_says_why_the_caller_may_not_decide(
    queue: dict[str, ApprovalRequest],
    api_for: Any,
    request: pytest.FixtureRequest,
    who: str,
    refusal: str,
) -> None:
    response = api_for(request.getfixturevalue(who)).get(detail(queue["mine"]))

    assert response.status_code == 200, response.content
    assert (response.json()["can_decide"], response.json()["refusal"]) == (False, refusal)


def test_a_settled_request_shows_its_outcome_and_decisions(
    queue: dict[str, ApprovalRequest], admin_user: Any, api_for: Any
) -> None:
    body = api_for(admin_user).get(detail(queue["rejected"])).json()

    assert (body["status"], body["decided_by"], body["review_notes"]) == (
        "rejected",
        "root",
        "not now",
    )
    assert body["decided_at"] is not None
    assert body["execution_status"] == "cancelled"
    [decision] = body["decisions"]
    assert (decision["user"], decision["verdict"], decision["notes"]) == (
        "root",
        "reject",
        "not now",
    )
    assert (body["can_decide"], body["refusal"]) == (False, "This request is already rejected.")


def test_a_request_of_an_agent_one_may_not_see_is_404(
    queue: dict[str, ApprovalRequest], outsider: Any, api_for: Any
) -> None:
    assert_error(api_for(outsider).get(detail(queue["mine"])), 404, "not_found")


@pytest.mark.parametrize("ref", ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "1"])
def test_an_unknown_request_is_404(admin_user: Any, api_for: Any, ref: str) -> None:
    client = api_for(admin_user)

    assert_error(client.get(f"{URL}/{ref}"), 404, "not_found")
    assert_error(client.post(f"{URL}/{ref}/approve", {}, format="json"), 404, "not_found")
    assert_error(client.post(f"{URL}/{ref}/reject", {}, format="json"), 404, "not_found")


# --- approve and reject ----------------------------------------------------------------------


def test_approve_settles_the_request_and_the_run_is_queued(
    queue: dict[str, ApprovalRequest], boss: Any, api_for: Any
) -> None:
    request = queue["mine"]

    response = approve(api_for(boss), request, {"notes": "  go ahead  "})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["decided_by"], body["review_notes"]) == (
        "approved",
        "boss",
        "go ahead",
    )
    assert (body["approvals"], body["execution_status"]) == (1, "queued")
    [decision] = body["decisions"]
    assert decision["user"].startswith("boss via api-key ")  # as recorded: which key
    assert (decision["verdict"], decision["notes"]) == ("approve", "go ahead")
    assert (body["can_decide"], body["refusal"]) == (False, "This request is already approved.")
    request.refresh_from_db()
    assert (request.status, request.decided_by) == (A.APPROVED, "boss")
    assert run_status(request) == S.QUEUED
    assert AuditEvent.objects.filter(
        target_type="approval", target_id=str(request.pk), action="approval.approved"
    ).exists()


def test_reject_cancels_the_run(queue: dict[str, ApprovalRequest], boss: Any, api_for: Any) -> None:
    request = queue["mine"]

    response = reject(api_for(boss), request, {"notes": "wrong mailbox"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["review_notes"], body["execution_status"]) == (
        "rejected",
        "wrong mailbox",
        "cancelled",
    )
    execution = Execution.objects.get(pk=request.execution_id)
    assert execution.status == S.CANCELLED
    assert execution.error_message == "execute rejected by boss: wrong mailbox"


def test_notes_are_optional(queue: dict[str, ApprovalRequest], boss: Any, api_for: Any) -> None:
    response = api_for(boss).post(f"{detail(queue['mine'])}/approve")  # no body at all

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["review_notes"]) == ("approved", "")


def test_an_admin_may_decide_a_request_that_does_not_list_them(
    queue: dict[str, ApprovalRequest], admin_user: Any, api_for: Any
) -> None:
    response = approve(api_for(admin_user), queue["theirs"])

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["decided_by"]) == ("approved", "root")
    assert run_status(queue["theirs"]) == S.QUEUED


def test_m_of_n_the_first_approval_leaves_it_pending_the_second_settles_it(
    owner: Any, boss: Any, finn: Any, admin_user: Any, api_for: Any
) -> None:
    agent = factories.runnable_agent(owner, name="two-keys", team="team-a")
    approval_policy_for(
        agent, admin_user, approvers=["boss@company.com", "group:finance"], required_approvals=2
    )
    request = pending_run(agent, owner)

    first = approve(api_for(boss), request, {"notes": "one"})

    assert first.status_code == 200, first.content
    assert (first.json()["status"], first.json()["approvals"]) == ("pending", 1)
    assert (first.json()["decided_by"], first.json()["execution_status"]) == (
        "",
        "pending_approval",
    )
    assert (first.json()["can_decide"], first.json()["refusal"]) == (
        False,
        "You have already decided this request.",
    )
    assert run_status(request) == S.PENDING_APPROVAL

    second = approve(api_for(finn), request, {"notes": "two"})

    assert second.status_code == 200, second.content
    body = second.json()
    assert (body["status"], body["approvals"], body["decided_by"]) == ("approved", 2, "finn")
    assert [(d["user"].split()[0], d["verdict"]) for d in body["decisions"]] == [
        ("boss", "approve"),
        ("finn", "approve"),
    ]
    assert run_status(request) == S.QUEUED


def test_m_of_n_one_rejection_settles_it(
    owner: Any, boss: Any, finn: Any, admin_user: Any, api_for: Any
) -> None:
    agent = factories.runnable_agent(owner, name="two-keys", team="team-a")
    approval_policy_for(
        agent, admin_user, approvers=["boss@company.com", "group:finance"], required_approvals=2
    )
    request = pending_run(agent, owner)
    assert approve(api_for(boss), request).status_code == 200

    response = reject(api_for(finn), request, {"notes": "no"})

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["approvals"]) == ("rejected", 1)
    assert run_status(request) == S.CANCELLED


def test_the_same_approver_twice_is_409(
    owner: Any, boss: Any, admin_user: Any, api_for: Any
) -> None:
    agent = factories.runnable_agent(owner, name="two-keys", team="team-a")
    approval_policy_for(
        agent, admin_user, approvers=["boss@company.com", "group:finance"], required_approvals=2
    )
    request = pending_run(agent, owner)
    client = api_for(boss)
    assert approve(client, request).status_code == 200

    error = assert_error(approve(client, request), 409, "approval_already_decided")

    assert error["details"]["status"] == "pending"
    assert request.decisions.count() == 1
    request.refresh_from_db()
    assert request.status == A.PENDING


@pytest.mark.parametrize("second", [approve, reject])
def test_a_decision_on_a_settled_request_is_409_with_its_status(
    queue: dict[str, ApprovalRequest], boss: Any, admin_user: Any, api_for: Any, second: Any
) -> None:
    request = queue["mine"]
    assert approve(api_for(boss), request).status_code == 200

    error = assert_error(second(api_for(admin_user), request), 409, "approval_not_pending")

    assert error["details"]["status"] == "approved"
    assert error["details"]["decided_by"] == "boss"
    assert list(request.decisions.values_list("user__username", flat=True)) == ["boss"]


def test_the_user_who_triggered_the_run_may_not_approve_it(
    owner: Any, admin_user: Any, api_for: Any
) -> None:
    agent = factories.runnable_agent(owner, name="self-service", team="team-a")
    approval_policy_for(agent, admin_user, approvers=["alice@company.com", "boss@company.com"])
    request = pending_run(agent, owner)

    error = assert_error(approve(api_for(owner), request), 403, "permission_denied")

    assert error["message"] == "You triggered this run: someone else must approve it."
    assert not request.decisions.exists()
    assert run_status(request) == S.PENDING_APPROVAL


def test_self_approval_when_the_policy_allows_it(owner: Any, admin_user: Any, api_for: Any) -> None:
    agent = factories.runnable_agent(owner, name="self-service", team="team-a")
    approval_policy_for(
        agent, admin_user, approvers=["alice@company.com"], allow_self_approval=True
    )
    request = pending_run(agent, owner)

    response = approve(api_for(owner), request)

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["decided_by"]) == ("approved", "alice")
    assert run_status(request) == S.QUEUED


@pytest.mark.parametrize(
    ("who", "message"),
    [
        ("other", "You are not an approver of this request (boss@company.com)."),
        ("viewer", "Your role may not approve or reject requests."),
    ],
)
@pytest.mark.parametrize("decide", [approve, reject])
def test_who_may_see_but_not_decide_gets_403(
    queue: dict[str, ApprovalRequest],
    api_for: Any,
    request: pytest.FixtureRequest,
    who: str,
    message: str,
    decide: Any,
) -> None:
    error = assert_error(
        decide(api_for(request.getfixturevalue(who)), queue["mine"]), 403, "permission_denied"
    )

    assert error["message"] == message
    assert not queue["mine"].decisions.exists()
    assert run_status(queue["mine"]) == S.PENDING_APPROVAL


def test_an_approver_with_a_read_only_api_key_may_not_decide(
    queue: dict[str, ApprovalRequest], boss: Any, api_for: Any
) -> None:
    # An API key never grants more than its own role.
    error = assert_error(approve(api_for(boss, "viewer"), queue["mine"]), 403, "permission_denied")

    assert error["message"] == "Your role may not approve or reject requests."
    assert not ApprovalDecision.objects.filter(request=queue["mine"]).exists()


def test_who_may_not_see_the_request_gets_404_on_approve(
    queue: dict[str, ApprovalRequest], outsider: Any, api_for: Any
) -> None:
    assert_error(approve(api_for(outsider), queue["mine"]), 404, "not_found")
    assert not queue["mine"].decisions.exists()


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"notes": 5}, "notes", "invalid"),
        ({"notes": ["go"]}, "notes", "invalid"),
        ({"notes": None}, "notes", "null"),
        ({"notes": "x" * 5001}, "notes", "max_length"),
        ({"notes": "nul\x00byte"}, "notes", "null_characters_not_allowed"),
        ({"note": "typo"}, "note", "unknown_field"),
        ({"notes": "ok", "verdict": "reject"}, "verdict", "unknown_field"),
    ],
)
@pytest.mark.parametrize("decide", [approve, reject])
def test_a_bad_body_is_400_and_decides_nothing(
    queue: dict[str, ApprovalRequest],
    boss: Any,
    api_for: Any,
    body: Any,
    field: str,
    code: str,
    decide: Any,
) -> None:
    response = decide(api_for(boss), queue["mine"], body)

    assert_error(response, 400, "validation_error")
    assert field_errors(response) == {field: code}
    assert not queue["mine"].decisions.exists()
    queue["mine"].refresh_from_db()
    assert queue["mine"].status == A.PENDING


@pytest.mark.parametrize("body", [["notes"], "go", 42, True])
def test_a_body_that_is_not_an_object_is_400(
    queue: dict[str, ApprovalRequest], boss: Any, api_for: Any, body: Any
) -> None:
    response = api_for(boss).post(f"{detail(queue['mine'])}/approve", body, format="json")

    assert_error(response, 400, "validation_error")
    assert not queue["mine"].decisions.exists()


def test_malformed_json_is_400(queue: dict[str, ApprovalRequest], boss: Any, api_for: Any) -> None:
    response = api_for(boss).post(
        f"{detail(queue['mine'])}/approve", '{"notes": ', content_type="application/json"
    )

    assert_error(response, 400, "malformed_request")
    assert not queue["mine"].decisions.exists()


def test_notes_of_exactly_the_limit_are_accepted(
    queue: dict[str, ApprovalRequest], boss: Any, api_for: Any
) -> None:
    response = approve(api_for(boss), queue["mine"], {"notes": "y" * 5000})

    assert response.status_code == 200, response.content
    assert len(response.json()["review_notes"]) == 5000


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_decisions_are_posted(
    queue: dict[str, ApprovalRequest], boss: Any, api_for: Any, method: str
) -> None:
    response = getattr(api_for(boss), method)(f"{detail(queue['mine'])}/approve")

    assert_error(response, 405, "method_not_allowed")
    assert not queue["mine"].decisions.exists()


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_requests_are_not_written_directly(
    queue: dict[str, ApprovalRequest], admin_user: Any, api_for: Any, method: str
) -> None:
    client = api_for(admin_user)
    url = URL if method == "post" else detail(queue["mine"])

    response = getattr(client, method)(url, {"status": "approved"}, format="json")

    assert_error(response, 405, "method_not_allowed")
    queue["mine"].refresh_from_db()
    assert queue["mine"].status == A.PENDING


def test_the_list_costs_the_same_number_of_queries_for_more_requests(
    runner: Agent, owner: Any, boss: Any, api_for: Any
) -> None:
    client = api_for(boss)
    pending_run(runner, owner)
    client.get(URL)  # warm: the key's role, the policy index

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(URL).status_code == 200
        return len(captured.captured_queries)

    one = queries()
    for _ in range(4):
        pending_run(runner, owner)

    assert queries() == one
    assert len(client.get(URL).json()["results"]) == 5
