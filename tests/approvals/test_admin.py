"""Approval requests in the Django admin: the list (limited to what the user may see) with
its filters and search, a read-only page with the decisions, no add / change / delete, and
Approve / Reject actions that go through ``approvals.services.approval_decide``, each
refusal shown as a message. The cast is test_api's: alice triggers runs of ``runner``
(team-a), boss approves them, charlie owns ``their-runner``, vera is a viewer, root admin."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from agents.models import Agent
from approvals import services
from approvals.models import ApprovalDecision, ApprovalRequest
from controlplane.access import Actor
from executions.models import Execution
from tests import factories
from tests.approvals.factories import pending_run
from tests.approvals.test_api import approval_policy_for, boss, finn, runner, their_runner

__all__ = ["boss", "finn", "runner", "their_runner"]  # fixtures shared with test_api

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/approvals/approvalrequest/"
DECISIONS = "/admin/approvals/approvaldecision/"
A = ApprovalRequest.Status
S = Execution.Status


def change_url(request: ApprovalRequest) -> str:
    return f"{CHANGELIST}{request.pk}/change/"


def logged_in(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def listed(client: Client, **params: Any) -> list[str]:
    response = client.get(CHANGELIST, params)
    assert response.status_code == 200, response.content
    return [str(request.pk) for request in response.context["cl"].result_list]


def action(client: Client, name: str, *requests: ApprovalRequest) -> Any:
    return client.post(
        CHANGELIST, {"action": name, "_selected_action": [str(r.pk) for r in requests]}
    )


def shown(client: Client, response: Any) -> list[tuple[str, str]]:
    """The messages on the page the response redirects to."""
    assert response.status_code == 302, response.content
    page = client.get(response["Location"])
    return [(message.level_tag, str(message)) for message in page.context["messages"]]


def offered_actions(client: Client) -> list[str]:
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    form = response.context["action_form"]
    if form is None:
        return []
    return [value for value, _ in form.fields["action"].choices if value]


def label(request: ApprovalRequest) -> str:
    return f"{request.agent.name}: {request.action} ({str(request.pk)[:8]})"


def run_status(request: ApprovalRequest) -> str:
    return Execution.objects.get(pk=request.execution_id).status


@pytest.fixture
def queue(
    runner: Agent, their_runner: Agent, owner: Any, outsider: Any, admin_user: Any
) -> dict[str, ApprovalRequest]:
    rejected = pending_run(runner, owner)
    services.approval_decide(
        actor=Actor(user=admin_user), request=rejected, verdict="reject", notes="not now"
    )
    return {
        "mine": pending_run(runner, owner),
        "theirs": pending_run(their_runner, outsider),
        "rejected": rejected,
    }


def keys(queue: dict[str, ApprovalRequest], *names: str) -> set[str]:
    return {str(queue[name].pk) for name in names}


# --- the list ------------------------------------------------------------------------------


def test_the_list_shows_status_action_agent_risk_and_progress(
    client: Client, queue: dict[str, ApprovalRequest], admin_user: Any
) -> None:
    response = logged_in(client, admin_user).get(CHANGELIST)

    assert response.status_code == 200
    model_admin = response.context["cl"].model_admin
    rows = {
        str(request.pk): (
            request.status,
            request.action,
            request.agent.name,
            request.risk_level,
            model_admin.approvals(request),
            request.decided_by,
        )
        for request in response.context["cl"].result_list
    }
    assert rows == {
        str(queue["mine"].pk): ("pending", "execute", "runner", "high", "0 of 1", ""),
        str(queue["theirs"].pk): ("pending", "execute", "their-runner", "medium", "0 of 1", ""),
        str(queue["rejected"].pk): ("rejected", "execute", "runner", "high", "0 of 1", "root"),
    }
    assert b"0 of 1" in response.content and b"their-runner" in response.content


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("admin_user", ["mine", "theirs", "rejected"]),
        ("owner", ["mine", "rejected"]),
        ("outsider", ["theirs"]),
        ("boss", ["mine", "rejected"]),  # an approver of runner's requests
        ("viewer", ["mine", "rejected"]),
    ],
)
def test_each_user_lists_what_they_may_see(
    client: Client,
    queue: dict[str, ApprovalRequest],
    request: pytest.FixtureRequest,
    who: str,
    expected: list[str],
) -> None:
    client = logged_in(client, request.getfixturevalue(who))

    assert set(listed(client)) == keys(queue, *expected)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status__exact": "pending"}, ["mine", "theirs"]),
        ({"status__exact": "rejected"}, ["rejected"]),
        ({"risk_level__exact": "medium"}, ["theirs"]),
        ({"action": "execute"}, ["mine", "theirs", "rejected"]),
        ({"q": "their-runner"}, ["theirs"]),
        ({"q": "root"}, ["rejected"]),  # who decided
    ],
)
def test_filters_and_search(
    client: Client,
    queue: dict[str, ApprovalRequest],
    admin_user: Any,
    params: dict[str, str],
    expected: list[str],
) -> None:
    assert set(listed(logged_in(client, admin_user), **params)) == keys(queue, *expected)


def test_search_by_execution_or_request_id(
    client: Client, queue: dict[str, ApprovalRequest], admin_user: Any
) -> None:
    client = logged_in(client, admin_user)

    assert listed(client, q=str(queue["theirs"].execution_id)) == [str(queue["theirs"].pk)]
    assert listed(client, q=f" {queue['rejected'].pk} ") == [str(queue["rejected"].pk)]


def test_a_service_account_may_not_open_the_list(
    client: Client, queue: dict[str, ApprovalRequest]
) -> None:
    service = factories.user("svc", role="agent-service")
    service.is_staff = True  # even let into the admin, it has no approvals page
    service.save()

    assert logged_in(client, service).get(CHANGELIST).status_code == 403


# --- read only -----------------------------------------------------------------------------


def test_the_page_shows_the_request_and_its_decisions_read_only(
    client: Client, queue: dict[str, ApprovalRequest], admin_user: Any
) -> None:
    request = queue["rejected"]

    response = logged_in(client, admin_user).get(change_url(request))

    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    assert response.context["adminform"].form.fields == {}  # nothing to edit
    content = response.content.decode()
    assert request.action_hash in content
    assert "&quot;agent&quot;: &quot;runner&quot;" in content  # the payload, as JSON
    [inline] = response.context["inline_admin_formsets"]
    assert [form.original.notes for form in inline] == ["not now"]
    assert "not now" in content


def test_the_page_of_a_request_one_may_not_see_is_not_shown(
    client: Client, queue: dict[str, ApprovalRequest], outsider: Any
) -> None:
    response = logged_in(client, outsider).get(change_url(queue["mine"]))

    assert response.status_code == 302  # the admin's "does not exist" redirect
    assert response["Location"] == "/admin/"


def test_no_add_change_or_delete(
    client: Client, queue: dict[str, ApprovalRequest], admin_user: Any
) -> None:
    client = logged_in(client, admin_user)
    request = queue["mine"]

    assert client.get(f"{CHANGELIST}add/").status_code == 403
    assert client.post(change_url(request), {"status": "approved"}).status_code == 403
    assert client.get(f"{CHANGELIST}{request.pk}/delete/").status_code == 403
    assert client.post(f"{CHANGELIST}{request.pk}/delete/", {"post": "yes"}).status_code == 403
    assert "delete_selected" not in offered_actions(client)
    assert client.get(CHANGELIST).context["has_add_permission"] is False
    request.refresh_from_db()
    assert request.status == A.PENDING


def test_delete_selected_is_refused_even_when_posted(
    client: Client, queue: dict[str, ApprovalRequest], admin_user: Any
) -> None:
    client = logged_in(client, admin_user)

    response = action(client, "delete_selected", queue["mine"])

    assert shown(client, response) == [("warning", "No action selected.")]
    assert ApprovalRequest.objects.filter(pk=queue["mine"].pk).exists()


# --- the actions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "offered"),
    [
        ("admin_user", ["approve_selected", "reject_selected"]),
        ("boss", ["approve_selected", "reject_selected"]),
        ("viewer", []),
    ],
)
def test_the_actions_are_offered_to_roles_that_may_decide(
    client: Client,
    queue: dict[str, ApprovalRequest],
    request: pytest.FixtureRequest,
    who: str,
    offered: list[str],
) -> None:
    assert offered_actions(logged_in(client, request.getfixturevalue(who))) == offered


def test_approve_selected_goes_through_the_service_and_the_run_is_queued(
    client: Client, queue: dict[str, ApprovalRequest], boss: Any
) -> None:
    client = logged_in(client, boss)
    request = queue["mine"]

    response = action(client, "approve_selected", request)

    assert shown(client, response) == [("success", f"{label(request)}: approved.")]
    request.refresh_from_db()
    assert (request.status, request.decided_by) == (A.APPROVED, "boss")
    [decision] = request.decisions.all()
    assert (decision.user, decision.user_label, decision.verdict) == (boss, "boss", "approve")
    assert run_status(request) == S.QUEUED


def test_reject_selected_cancels_the_run(
    client: Client, queue: dict[str, ApprovalRequest], boss: Any
) -> None:
    client = logged_in(client, boss)
    request = queue["mine"]

    response = action(client, "reject_selected", request)

    assert shown(client, response) == [("success", f"{label(request)}: rejected.")]
    request.refresh_from_db()
    assert request.status == A.REJECTED
    assert run_status(request) == S.CANCELLED


def test_each_refusal_is_reported_and_the_others_are_decided(
    client: Client, queue: dict[str, ApprovalRequest], boss: Any
) -> None:
    client = logged_in(client, boss)  # the rejected one is settled already: 409

    response = action(client, "approve_selected", queue["mine"], queue["rejected"])

    assert sorted(shown(client, response)) == sorted(
        [
            ("success", f"{label(queue['mine'])}: approved."),
            ("error", f"{label(queue['rejected'])}: This request is already rejected (by root)."),
        ]
    )
    queue["rejected"].refresh_from_db()
    assert queue["rejected"].status == A.REJECTED
    assert list(queue["rejected"].decisions.values_list("user__username", flat=True)) == ["root"]


def test_a_non_approver_is_told_why(
    client: Client, queue: dict[str, ApprovalRequest], other: Any
) -> None:
    client = logged_in(client, other)  # bob sees runner's requests, boss approves them

    response = action(client, "reject_selected", queue["mine"])

    assert shown(client, response) == [
        (
            "error",
            f"{label(queue['mine'])}: You are not an approver of this request (boss@company.com).",
        )
    ]
    assert not queue["mine"].decisions.exists()
    assert run_status(queue["mine"]) == S.PENDING_APPROVAL


def test_the_user_who_triggered_the_run_may_not_approve_it(
    client: Client, owner: Any, admin_user: Any
) -> None:
    agent = factories.runnable_agent(owner, name="self-service", team="team-a")
    approval_policy_for(agent, admin_user, approvers=["alice@company.com"])
    request = pending_run(agent, owner)
    client = logged_in(client, owner)

    response = action(client, "approve_selected", request)

    assert shown(client, response) == [
        ("error", f"{label(request)}: You triggered this run: someone else must approve it.")
    ]
    request.refresh_from_db()
    assert request.status == A.PENDING


def test_m_of_n_the_first_approval_is_recorded_and_a_second_one_is_409(
    client: Client, owner: Any, boss: Any, finn: Any, admin_user: Any
) -> None:
    agent = factories.runnable_agent(owner, name="two-keys", team="team-a")
    approval_policy_for(
        agent, admin_user, approvers=["boss@company.com", "group:finance"], required_approvals=2
    )
    request = pending_run(agent, owner)
    client = logged_in(client, boss)

    first = action(client, "approve_selected", request)

    assert shown(client, first) == [("success", f"{label(request)}: approval recorded (1 of 2).")]

    again = action(client, "approve_selected", request)

    assert shown(client, again) == [
        ("error", f"{label(request)}: You have already decided this request.")
    ]
    request.refresh_from_db()
    assert (request.status, request.decisions.count()) == (A.PENDING, 1)

    finn_client = logged_in(Client(), finn)
    last = action(finn_client, "approve_selected", request)

    assert shown(finn_client, last) == [("success", f"{label(request)}: approved.")]
    assert run_status(request) == S.QUEUED


def test_a_viewer_posting_an_action_decides_nothing(
    client: Client, queue: dict[str, ApprovalRequest], viewer: Any
) -> None:
    client = logged_in(client, viewer)

    response = action(client, "approve_selected", queue["mine"])

    assert response.status_code == 200  # she has no action at all: the list again
    assert response.context["action_form"] is None
    assert not queue["mine"].decisions.exists()
    queue["mine"].refresh_from_db()
    assert queue["mine"].status == A.PENDING


# --- decisions -------------------------------------------------------------------------------


def test_decisions_are_listed_read_only_for_what_the_user_may_see(
    client: Client, queue: dict[str, ApprovalRequest], admin_user: Any, outsider: Any
) -> None:
    root = logged_in(client, admin_user)
    response = root.get(DECISIONS)

    assert response.status_code == 200
    [decision] = response.context["cl"].result_list
    assert (decision.request_id, decision.verdict, decision.notes) == (
        queue["rejected"].pk,
        ApprovalDecision.Verdict.REJECT,
        "not now",
    )
    assert root.get(f"{DECISIONS}add/").status_code == 403
    assert root.get(f"{DECISIONS}{decision.pk}/delete/").status_code == 403

    charlie = logged_in(Client(), outsider)
    assert list(charlie.get(DECISIONS).context["cl"].result_list) == []
