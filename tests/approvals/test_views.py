"""The approvers' pages: the queue (order, badges, expiry, the payload as it will run,
tabs, statistics, empty states), Approve / Reject through HTMX and without it, refusals
(a viewer, a non-approver, an outsider, a forged POST without CSRF, a request someone else
decided first), the request's page with its history, and the links to it from the
navigation and the run's page.

alice (operator, team-a) triggers the runs; boss (operator, no team) is the policy's listed
approver; bob (operator, team-a) sees the requests through the agent but is not listed;
vera (viewer, team-a) may look but not decide; charlie (operator, team-b) sees nothing.
HTMX requests carry ``HX-Request`` and ``HX-Target`` as htmx itself sends them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django.asserts import assertRedirects, assertTemplateNotUsed, assertTemplateUsed

from approvals.models import ApprovalDecision, ApprovalRequest
from approvals.services import approval_decide
from controlplane.access import Actor
from executions import services as execution_services
from executions.models import Execution
from executions.trigger import TriggerRequest, execution_trigger
from tests import factories
from tests.approvals.factories import approval_policy, pending_run

pytestmark = pytest.mark.django_db

A = ApprovalRequest.Status
S = Execution.Status
QUEUE = "/approvals/"


def htmx(target: str) -> dict[str, str]:
    return {"HX-Request": "true", "HX-Target": target}


def card(request: ApprovalRequest) -> str:
    return f"approval-{request.pk}"


def decide_url(request: ApprovalRequest) -> str:
    return f"/approvals/{request.pk}/decide"


def detail_url(request: ApprovalRequest) -> str:
    return f"/approvals/{request.pk}/"


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def html(response: Any) -> str:
    return response if isinstance(response, str) else response.content.decode()


def cards(response: Any) -> list[str]:
    """The request ids of the queue's cards, in order."""
    return re.findall(r'class="card approval" data-approval="([^"]+)"', html(response))


def verdict_buttons(response: Any) -> list[str]:
    """The Approve / Reject buttons on the page, in order."""
    return re.findall(r'<button [^>]*data-verdict="(approve|reject)"', html(response))


@pytest.fixture
def boss(db: Any) -> Any:
    return factories.user("boss", role="operator", email="boss@company.com")


@pytest.fixture
def runner(owner: Any, other: Any) -> Any:
    return factories.runnable_agent(owner, name="runner", team="team-a")


@pytest.fixture
def policy(admin_user: Any) -> Any:
    return approval_policy(admin_user)


@pytest.fixture
def waiting(runner: Any, owner: Any, policy: Any) -> ApprovalRequest:
    """alice's run of runner, waiting for boss."""
    return pending_run(runner, owner, {"candidate": "Grace Hopper"})


def unchanged(request: ApprovalRequest) -> None:
    """The request is still pending, undecided, and its run still waits."""
    request.refresh_from_db()
    assert request.status == A.PENDING
    assert not request.decisions.exists()
    assert Execution.objects.get(pk=request.execution_id).status == S.PENDING_APPROVAL


# --- the queue ------------------------------------------------------------------------------


def test_queue_puts_pending_first_expiring_soonest_then_decided(
    client: Client, runner: Any, owner: Any, policy: Any, boss: Any
) -> None:
    later, sooner, decided, overdue = (pending_run(runner, owner) for _ in range(4))
    now = timezone.now()
    for request, hours in ((later, 5), (sooner, 2), (decided, 1), (overdue, -1)):
        ApprovalRequest.objects.filter(pk=request.pk).update(
            expires_at=now + timedelta(hours=hours, minutes=1)
        )
    approval_decide(actor=Actor(user=boss), request=decided, verdict="reject", notes="no")
    client = login(client, boss)

    pending = client.get(QUEUE)
    everything = client.get(QUEUE, {"show": "all"})

    assert pending.status_code == 200
    assertTemplateUsed(pending, "approvals/queue.html")
    assert cards(pending) == [str(r.pk) for r in (overdue, sooner, later)]
    assert cards(everything) == [str(r.pk) for r in (overdue, sooner, later, decided)]
    page = html(everything)
    assert re.search(r"in <time[^>]*>2\xa0hours", page)  # sooner: humanized
    assert re.search(r"in <time[^>]*>5\xa0hours", page)
    assert re.search(r'<span class="overdue">expired <time[^>]*>59\xa0minutes ago</time>', page)
    assert (
        '<p class="outcome outcome-rejected" data-outcome="rejected"><strong>Rejected</strong> by boss'
        in page
    )
    assert 'aria-current="page" data-tab="all"' in page


def test_queue_card_shows_risk_who_why_and_the_payload_escaped(
    client: Client, runner: Any, owner: Any, policy: Any, boss: Any
) -> None:
    medium = pending_run(runner, owner)  # a run start under a policy without a threshold
    critical = pending_run(runner, owner, {"note": "<script>alert(1)</script>"})
    ApprovalRequest.objects.filter(pk=critical.pk).update(
        risk_level="critical", expires_at=timezone.now() + timedelta(minutes=30)
    )

    page = html(login(client, boss).get(QUEUE))

    assert '<span class="badge risk-critical" data-risk="critical">critical risk</span>' in page
    assert '<span class="badge risk-medium" data-risk="medium">medium risk</span>' in page
    assert cards(page) == [str(critical.pk), str(medium.pk)]  # expires first
    assert "<dt>Triggered by</dt><dd>alice</dd>" in page
    assert f'<a href="/policies/{policy.pk}/">sign-off</a>' in page
    assert f"<strong>Why:</strong> {critical.reason}" in page
    assert "<script>alert(1)</script>" not in page
    payload = re.search(rf'id="payload-approval-{critical.pk}".*?<pre[^>]*>(.*?)</pre>', page, re.S)
    assert payload is not None
    assert payload.group(1) == (
        "{\n"
        "  &quot;action&quot;: &quot;execute&quot;,\n"
        "  &quot;agent&quot;: &quot;runner&quot;,\n"
        "  &quot;input&quot;: {\n"
        "    &quot;note&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;\n"
        "  },\n"
        "  &quot;version&quot;: &quot;1.0.0&quot;\n"
        "}"
    )
    assert "<dd data-approvals>0 of 1</dd>" in page


def test_approver_gets_the_buttons_and_others_do_not(
    client: Client, waiting: ApprovalRequest, boss: Any, owner: Any, other: Any, viewer: Any
) -> None:
    as_boss = login(client, boss).get(QUEUE)
    as_owner = login(Client(), owner).get(QUEUE)
    as_bob = login(Client(), other).get(QUEUE)
    as_viewer = login(Client(), viewer).get(QUEUE)

    assert verdict_buttons(as_boss) == ["approve", "reject"]
    assert f'<label for="notes-{card(waiting)}">Notes' in html(as_boss)
    for response in (as_owner, as_bob, as_viewer):
        assert cards(response) == [str(waiting.pk)]  # seen through the agent's team
        assert verdict_buttons(response) == []
        assert "hx-post" not in html(response)
    # Operators are told why; a viewer is not lectured on every card.
    assert "You are not an approver of this request (boss@company.com)." in html(as_bob)
    assert "refusal" not in html(as_viewer)


def test_approver_who_triggered_the_run_is_told_to_ask_someone_else(
    client: Client, runner: Any, owner: Any, admin_user: Any
) -> None:
    approval_policy(admin_user, approvers=["alice@company.com"])
    own = pending_run(runner, owner)

    response = login(client, owner).get(QUEUE)

    assert cards(response) == [str(own.pk)]
    assert verdict_buttons(response) == []
    assert "You triggered this run: someone else must approve it." in html(response)


def test_assigned_tab_shows_only_what_lists_me(
    client: Client, runner: Any, owner: Any, other: Any, policy: Any
) -> None:
    mine, theirs = pending_run(runner, owner), pending_run(runner, owner)
    ApprovalRequest.objects.filter(pk=mine.pk).update(approvers=["bob@company.com"])
    client = login(client, other)

    assigned = client.get(QUEUE, {"show": "mine"}, headers=htmx("approval-queue"))
    pending = client.get(QUEUE)

    assertTemplateUsed(assigned, "approvals/_queue.html")
    assertTemplateNotUsed(assigned, "approvals/queue.html")  # the tab swaps the list only
    assert cards(assigned) == [str(mine.pk)]
    assert verdict_buttons(assigned) == ["approve", "reject"]
    assert set(cards(pending)) == {str(mine.pk), str(theirs.pk)}


def test_empty_queue_says_nothing_is_waiting(client: Client, boss: Any, waiting: Any) -> None:
    approval_decide(actor=Actor(user=boss), request=waiting, verdict="approve")
    client = login(client, boss)

    pending = html(client.get(QUEUE))
    assigned = html(client.get(QUEUE, {"show": "mine"}))
    everything = html(client.get(QUEUE, {"show": "all"}))

    assert '<p class="empty">Nothing is waiting for you.</p>' in pending
    assert '<dd data-stat="oldest-pending">—</dd>' in pending
    assert '<p class="empty">Nothing is waiting for you.</p>' in assigned
    assert "Nothing is waiting" not in everything
    assert cards(everything) == [str(waiting.pk)]


def test_statistics_panel_shows_pending_average_wait_and_slowest_approvers(
    client: Client, runner: Any, owner: Any, policy: Any, boss: Any
) -> None:
    decided, still = pending_run(runner, owner), pending_run(runner, owner)
    ApprovalRequest.objects.filter(pk=decided.pk).update(
        created_at=timezone.now() - timedelta(hours=3)
    )
    ApprovalRequest.objects.filter(pk=still.pk).update(
        created_at=timezone.now() - timedelta(hours=2, minutes=10)
    )
    decided.refresh_from_db()
    approval_decide(actor=Actor(user=boss), request=decided, verdict="approve")

    page = html(login(client, boss).get(QUEUE))

    stats = re.search(r'<section class="card approval-stats".*?</section>', page, re.S)
    assert stats is not None
    assert '<dd data-stat="pending">1</dd>' in stats.group(0)
    assert re.search(
        r'<dd data-stat="oldest-pending"><time datetime="[^"]+" [^>]*>2 h</time>', stats.group(0)
    )
    assert '<dd data-stat="decided">1</dd>' in stats.group(0)
    assert '<dd data-stat="average-wait">3 h</dd>' in stats.group(0)
    assert re.search(
        r'<tr data-approver="boss"><td>boss</td><td>1</td><td>3 h</td></tr>', stats.group(0)
    )


def test_queue_query_count_does_not_grow_with_the_requests(
    client: Client,
    runner: Any,
    owner: Any,
    policy: Any,
    boss: Any,
    django_assert_max_num_queries: Any,
) -> None:
    client = login(client, boss)
    first = pending_run(runner, owner)
    approval_decide(actor=Actor(user=boss), request=first, verdict="reject", notes="no")
    pending_run(runner, owner)

    with CaptureQueriesContext(connection) as few:
        two = client.get(QUEUE, {"show": "all"})
    for _ in range(10):
        pending_run(runner, owner)
    with django_assert_max_num_queries(len(few.captured_queries)):
        twelve = client.get(QUEUE, {"show": "all"})

    assert len(cards(two)) == 2
    assert len(cards(twelve)) == 12
    assert verdict_buttons(twelve).count("approve") == 11
    assert len(few.captured_queries) <= 15


def test_viewer_without_the_approvals_permission_is_refused(
    client: Client, waiting: ApprovalRequest
) -> None:
    nobody = factories.user("pat")  # no role at all
    client = login(client, nobody)

    assert client.get(QUEUE).status_code == 403
    assert client.get(detail_url(waiting)).status_code == 403
    assert client.post(decide_url(waiting), {"verdict": "approve"}).status_code == 403
    unchanged(waiting)


def test_anonymous_is_sent_to_log_in(client: Client, waiting: ApprovalRequest) -> None:
    response = client.post(decide_url(waiting), {"verdict": "approve"})

    assertRedirects(response, f"/login/?next={decide_url(waiting)}", fetch_redirect_response=False)
    unchanged(waiting)


# --- deciding ---------------------------------------------------------------------------------


def test_htmx_approve_swaps_the_card_and_queues_the_run(
    client: Client,
    waiting: ApprovalRequest,
    boss: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = login(client, boss).post(
            decide_url(waiting),
            {"verdict": "approve", "notes": "looks right", "next": QUEUE},
            headers=htmx(card(waiting)),
        )

    assert response.status_code == 200
    assertTemplateUsed(response, "approvals/_card.html")
    assertTemplateNotUsed(response, "base.html")
    page = html(response)
    assert (
        f'<article id="{card(waiting)}" class="card approval" data-approval="{waiting.pk}" data-status="approved"'
        in page
    )
    assert "Approved: the run is queued." in page
    assert "looks right" in page
    assert verdict_buttons(response) == []
    assert response["Vary"] and "HX-Request" in response["Vary"]
    waiting.refresh_from_db()
    assert (waiting.status, waiting.decided_by, waiting.review_notes) == (
        A.APPROVED,
        "boss",
        "looks right",
    )
    execution = Execution.objects.get(pk=waiting.execution_id)
    assert execution.status == S.QUEUED
    rings = [
        cb for cb in callbacks if isinstance(cb, partial) and cb.func is execution_services._ring
    ]
    assert [ring.args for ring in rings] == [(str(execution.pk), execution.attempt)]


def test_plain_post_reject_with_notes_redirects_back(
    client: Client, waiting: ApprovalRequest, boss: Any
) -> None:
    client = login(client, boss)

    response = client.post(
        decide_url(waiting),
        {"verdict": "reject", "notes": "Not this candidate.", "next": f"{QUEUE}?show=all"},
    )

    assertRedirects(response, f"{QUEUE}?show=all", fetch_redirect_response=False)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.review_notes) == (A.REJECTED, "Not this candidate.")
    decision = waiting.decisions.get()
    assert (decision.user_label, decision.verdict, decision.notes) == (
        "boss",
        "reject",
        "Not this candidate.",
    )
    execution = Execution.objects.get(pk=waiting.execution_id)
    assert execution.status == S.CANCELLED
    assert "Not this candidate." in execution.error_message
    followed = html(client.get(f"{QUEUE}?show=all"))
    assert "Rejected: the run is cancelled." in followed


def test_plain_post_without_a_safe_next_goes_to_the_request(
    client: Client, waiting: ApprovalRequest, boss: Any
) -> None:
    response = login(client, boss).post(
        decide_url(waiting), {"verdict": "approve", "next": "https://evil.example/"}
    )

    assertRedirects(response, detail_url(waiting), fetch_redirect_response=False)


@pytest.mark.parametrize("who", ["viewer", "other"])
def test_forged_decision_by_a_viewer_or_non_approver_is_refused(
    client: Client, waiting: ApprovalRequest, who: str, request: pytest.FixtureRequest
) -> None:
    client = login(client, request.getfixturevalue(who))
    expected = {
        "viewer": "Your role may not approve or reject requests.",
        "other": "You are not an approver of this request (boss@company.com).",
    }[who]

    plain = client.post(decide_url(waiting), {"verdict": "approve"})
    swapped = client.post(decide_url(waiting), {"verdict": "reject"}, headers=htmx(card(waiting)))

    assert plain.status_code == 403
    assertTemplateUsed(plain, "approvals/detail.html")
    assert expected in html(plain)
    assert swapped.status_code == 403
    assertTemplateUsed(swapped, "approvals/_card.html")
    assert f'<p class="msg msg-error" role="alert">{expected}</p>' in html(swapped)
    assert 'data-status="pending"' in html(swapped)
    unchanged(waiting)


def test_outsider_cannot_see_nor_decide(
    client: Client, waiting: ApprovalRequest, outsider: Any
) -> None:
    client = login(client, outsider)

    assert cards(client.get(QUEUE, {"show": "all"})) == []
    assert client.get(detail_url(waiting)).status_code == 404
    assert client.post(decide_url(waiting), {"verdict": "approve"}).status_code == 404
    unchanged(waiting)


def test_decide_needs_the_csrf_token(waiting: ApprovalRequest, boss: Any) -> None:
    client = login(Client(enforce_csrf_checks=True), boss)

    refused = client.post(decide_url(waiting), {"verdict": "approve"})

    assert refused.status_code == 403
    unchanged(waiting)
    page = html(client.get(QUEUE))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    accepted = client.post(
        decide_url(waiting), {"verdict": "approve", "csrfmiddlewaretoken": token.group(1)}
    )
    assert accepted.status_code == 302
    waiting.refresh_from_db()
    assert waiting.status == A.APPROVED


def test_decide_is_post_only(client: Client, waiting: ApprovalRequest, boss: Any) -> None:
    assert login(client, boss).get(decide_url(waiting)).status_code == 405
    unchanged(waiting)


def test_a_request_decided_first_by_someone_else_answers_409_with_the_state(
    client: Client, waiting: ApprovalRequest, boss: Any, other: Any
) -> None:
    ApprovalRequest.objects.filter(pk=waiting.pk).update(
        approvers=["boss@company.com", "bob@company.com"]
    )
    waiting.refresh_from_db()
    bob = login(client, other)
    stale = html(bob.get(QUEUE))  # bob's page still offers the buttons ...
    assert verdict_buttons(stale) == ["approve", "reject"]
    approval_decide(actor=Actor(user=boss), request=waiting, verdict="reject", notes="no")

    swapped = bob.post(
        decide_url(waiting), {"verdict": "approve", "notes": "yes"}, headers=htmx(card(waiting))
    )
    plain = bob.post(decide_url(waiting), {"verdict": "approve"})

    assert swapped.status_code == 409
    page = html(swapped)
    assert "This request is already rejected (by boss)." in page
    assert 'data-status="rejected"' in page
    assert verdict_buttons(swapped) == []
    assert plain.status_code == 409
    assertTemplateUsed(plain, "approvals/detail.html")
    assert "This request is already rejected (by boss)." in html(plain)
    waiting.refresh_from_db()
    assert waiting.status == A.REJECTED
    assert list(waiting.decisions.values_list("user_label", flat=True)) == ["boss"]


def test_an_invalid_verdict_keeps_the_notes_typed(
    client: Client, waiting: ApprovalRequest, boss: Any
) -> None:
    response = login(client, boss).post(
        decide_url(waiting), {"verdict": "maybe", "notes": "thinking"}, headers=htmx(card(waiting))
    )

    assert response.status_code == 400
    assert "verdict: Must be approve or reject." in html(response)
    assert ">thinking</textarea>" in html(response)
    unchanged(waiting)


# --- M of N and the request's page ---------------------------------------------------------


@pytest.fixture
def two_of_two(runner: Any, owner: Any, admin_user: Any) -> ApprovalRequest:
    approval_policy(
        admin_user,
        "two-keys",
        approvers=["boss@company.com", "bob@company.com"],
        required_approvals=2,
    )
    return pending_run(runner, owner)


def test_first_of_two_approvals_is_counted_and_the_form_goes_away(
    client: Client, two_of_two: ApprovalRequest, boss: Any
) -> None:
    response = login(client, boss).post(
        decide_url(two_of_two), {"verdict": "approve"}, headers=htmx(card(two_of_two))
    )

    assert response.status_code == 200
    page = html(response)
    assert 'data-status="pending"' in page
    assert "<dd data-approvals>1 of 2</dd>" in page
    assert "Your approval is counted; more approvals are needed." in page
    assert "You approved this; waiting for the other approvers." in page
    assert verdict_buttons(response) == []
    assert Execution.objects.get(pk=two_of_two.execution_id).status == S.PENDING_APPROVAL


def test_detail_shows_the_history_outcome_hash_and_run(
    client: Client, two_of_two: ApprovalRequest, boss: Any, other: Any
) -> None:
    approval_decide(actor=Actor(user=boss), request=two_of_two, verdict="approve", notes="ok")
    approval_decide(
        actor=Actor(user=other), request=two_of_two, verdict="reject", notes="not today"
    )

    response = login(client, other).get(detail_url(two_of_two))

    assert response.status_code == 200
    assertTemplateUsed(response, "approvals/detail.html")
    page = html(response)
    rows = re.findall(r'<tr data-verdict="(\w+)">\s*<td>(\w+)</td>.*?<td>([^<]*)</td>', page, re.S)
    assert rows == [("approve", "boss", "ok"), ("reject", "bob", "not today")]
    assert 'data-outcome="rejected"><strong>Rejected</strong> by bob' in page
    assert "“not today”" in page
    assert f'<code id="approval-hash">{two_of_two.action_hash}</code>' in page
    assert f'href="/executions/{two_of_two.execution_id}/" id="approval-execution"' in page
    assert "<dd>boss@company.com, bob@company.com</dd>" in page
    assert verdict_buttons(response) == []


def test_run_is_linked_only_for_who_may_open_it(
    client: Client, waiting: ApprovalRequest, boss: Any, other: Any
) -> None:
    link = f'<a href="/executions/{waiting.execution_id}/"'

    as_boss = login(client, boss)  # listed by e-mail, not on the agent's team
    as_bob = login(Client(), other)  # on the team

    assert link not in html(as_boss.get(QUEUE))
    assert 'href="/agents/runner/"' not in html(as_boss.get(detail_url(waiting)))
    assert 'href="/agents/runner/"' in html(as_bob.get(detail_url(waiting)))
    assert "(your role may not open this agent's runs)" in html(as_boss.get(detail_url(waiting)))
    assert link in html(as_bob.get(QUEUE))
    assert f'{link} id="approval-execution"' in html(as_bob.get(detail_url(waiting)))


def test_detail_decides_in_place(client: Client, waiting: ApprovalRequest, boss: Any) -> None:
    client = login(client, boss)
    before = client.get(detail_url(waiting))
    assert verdict_buttons(before) == ["approve", "reject"]
    assert 'hx-target="#approval"' in html(before)

    response = client.post(
        decide_url(waiting), {"verdict": "reject", "notes": "no"}, headers=htmx("approval")
    )

    assertTemplateUsed(response, "approvals/_detail.html")
    assertTemplateNotUsed(response, "approvals/_card.html")
    page = html(response)
    assert '<section id="approval" class="card approval"' in page
    assert re.search(r'<tr data-verdict="reject">\s*<td>boss</td>', page)
    assert ApprovalDecision.objects.filter(request=waiting, verdict="reject").count() == 1


def test_detail_of_an_unknown_request_is_404(client: Client, boss: Any) -> None:
    missing = "00000000-0000-0000-0000-000000000000"

    assert login(client, boss).get(f"/approvals/{missing}/").status_code == 404


# --- links in from the rest of the console ---------------------------------------------------


def test_run_page_links_to_the_pending_request(
    client: Client, waiting: ApprovalRequest, owner: Any
) -> None:
    page = html(login(client, owner).get(f"/executions/{waiting.execution_id}/"))

    assert (
        f'Waiting for approval: <a href="/approvals/{waiting.pk}/">execute (medium risk)</a>'
        ", expires in <time" in page
    )
    assert re.search(r"data-expires>(23\shours|1\sday)", page), page  # the policy's 24 h


def test_run_page_without_a_wait_says_nothing_of_approvals(
    client: Client, runner: Any, owner: Any
) -> None:
    result = execution_trigger(
        TriggerRequest(actor=Actor(user=owner), agent=runner, input={}, source=Execution.Source.API)
    )

    page = html(login(client, owner).get(f"/executions/{result.execution.pk}/"))

    assert result.execution.status == S.QUEUED
    assert "Waiting for approval" not in page


def test_navigation_links_approvals_with_the_pending_count(
    client: Client, waiting: ApprovalRequest, boss: Any, runner: Any, owner: Any
) -> None:
    pending_run(runner, owner)
    client = login(client, boss)

    page = html(client.get("/agents/"))
    on_queue = html(client.get(QUEUE))
    count = html(client.get("/approvals/nav-count"))

    assert '<li><a href="/approvals/">Approvals<span id="nav-approvals"' in page
    # Loaded with the page, and again whenever the approvals feed says the queue changed.
    assert 'data-live-refresh="approvals" data-live-url="/approvals/nav-count"' in page
    assert '<a href="/approvals/" aria-current="page">Approvals' in on_queue
    assert (
        '<span class="badge nav-count" id="nav-approvals-count">2<span class="visually-hidden"> pending</span></span>'
        in count
    )


def test_navigation_hides_approvals_from_who_may_not_view_them(client: Client) -> None:
    plain = factories.user("pat")
    client = login(client, plain)

    assert "/approvals/" not in html(client.get("/api-keys/"))
    assert html(client.get("/approvals/nav-count")).strip() == ""
