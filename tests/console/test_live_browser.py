"""The live console in a real browser (Debian's Chromium through Playwright) against the
real ASGI server (uvicorn, websockets) and a real Celery worker: nobody presses reload.

- an approver approves a pending request and watches its run finish on the run's page;
- a second approver's queue drops the request the first one decided, and shows a new one;
- an operator starts a run from the Run form and sees its steps and status arrive;
- a viewer sees no Run form and no Approve button, and a forged POST is refused.

On failure each test saves a screenshot and the page's HTML under var/test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Page, expect

from approvals.models import ApprovalRequest
from approvals.services import approval_decide
from controlplane.access import Actor
from executions.models import Execution
from tests import factories
from tests.approvals.factories import approval_policy, pending_run
from tests.processes import celery_worker

pytestmark = [
    pytest.mark.browser,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
]

SLOW_RUN = {"simulation": {"text": "All checked.", "latency_ms": 2500}}


@pytest.fixture
def worker(django_db_setup: Any) -> Iterator[Any]:
    """One per test, like the server (see ``tests.browser.asgi_url``)."""
    with celery_worker() as started:
        yield started


def log_in(page: Page, username: str) -> None:
    """With a real session (the server process does not know the tests' fast password
    hasher, so the login form itself is tested elsewhere)."""
    client = Client()
    client.force_login(User.objects.get(username=username))
    page.goto("/login/")
    base = re.match(r"https?://[^/]+", page.url).group(0)  # type: ignore[union-attr]
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}]
    )
    page.goto("/agents/")
    expect(page.locator(".whoami")).to_contain_text(username)


def mark_page(page: Page) -> None:
    """A marker that survives swaps and dies with a page load."""
    page.evaluate("window.__marker = 1")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"


def live(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-live-state", "open")


@pytest.fixture
def team() -> dict[str, Any]:
    owner = factories.user("alice", role="operator", teams=["team-a"], email="alice@company.com")
    boss = factories.user("boss", role="operator", teams=["team-a"], email="boss@company.com")
    bob = factories.user("bob", role="operator", teams=["team-a"], email="bob@company.com")
    viewer = factories.user("vera", role="viewer", teams=["team-a"])
    agent = factories.runnable_agent(owner, name="checker", team="team-a", llm=SLOW_RUN)
    return {"owner": owner, "boss": boss, "bob": bob, "viewer": viewer, "agent": agent}


def test_an_approver_approves_and_watches_the_run_finish_without_reloading(
    live_page: Page, worker: Any, team: dict[str, Any]
) -> None:
    approval_policy(factories.user("root", role="admin"), approvers=["boss@company.com"])
    waiting = pending_run(team["agent"], team["owner"], {"invoice": "INV-7"})
    page = live_page
    log_in(page, "boss")
    page.goto(f"/approvals/{waiting.pk}/")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#approval")).to_have_attribute("data-status", "approved")

    page.locator("#approval-execution").click()
    expect(page).to_have_url(re.compile(rf"/executions/{waiting.execution_id}/$"))
    live(page)
    mark_page(page)
    section = page.locator("#execution")
    expect(section).to_have_attribute("data-status", "running", timeout=20_000)
    expect(section).to_have_attribute("data-status", "success", timeout=20_000)
    expect(page.locator("#execution-summary, #execution-output").first).to_contain_text(
        "All checked."
    )
    assert_not_reloaded(page)


def test_a_second_approvers_queue_follows_requests_decided_and_opened_elsewhere(
    live_page: Page, team: dict[str, Any]
) -> None:
    approval_policy(
        factories.user("root", role="admin"), approvers=["boss@company.com", "bob@company.com"]
    )
    first = pending_run(team["agent"], team["owner"], {"invoice": "INV-1"})
    page = live_page
    log_in(page, "bob")
    page.goto("/approvals/")
    live(page)
    mark_page(page)
    expect(page.locator(f'article[data-approval="{first.pk}"]')).to_be_visible()

    approval_decide(actor=Actor(user=team["boss"]), request=first, verdict="approve")
    expect(page.locator(f'article[data-approval="{first.pk}"]')).to_have_count(0)

    second = pending_run(team["agent"], team["owner"], {"invoice": "INV-2"})
    expect(page.locator(f'article[data-approval="{second.pk}"]')).to_be_visible()
    expect(page.locator("#nav-approvals-count")).to_have_text("1 pending")
    assert_not_reloaded(page)


def test_an_operator_starts_a_run_from_the_form_and_sees_it_go_live(
    live_page: Page, worker: Any, team: dict[str, Any]
) -> None:
    page = live_page
    log_in(page, "alice")
    page.goto("/agents/checker/")
    page.locator("#run-form").get_by_role("button", name=re.compile("^Run")).click()
    expect(page).to_have_url(re.compile(r"/executions/[0-9a-f-]+/$"))
    live(page)
    mark_page(page)
    section = page.locator("#execution")
    expect(section).to_have_attribute("data-status", "success", timeout=30_000)
    expect(page.locator("#steps")).to_contain_text("llm")
    assert_not_reloaded(page)
    execution = Execution.objects.get(agent=team["agent"])
    assert execution.trigger_source == "manual" and execution.status == "success"


def test_a_viewer_sees_no_run_or_approve_buttons_and_a_forged_post_is_refused(
    live_page: Page, team: dict[str, Any]
) -> None:
    approval_policy(factories.user("root", role="admin"), approvers=["vera@company.com"])
    waiting = pending_run(team["agent"], team["owner"], {"invoice": "INV-9"})
    page = live_page
    log_in(page, "vera")
    page.goto("/agents/checker/")
    expect(page.locator("#recent-runs")).to_be_visible()
    expect(page.locator("#run-form")).to_have_count(0)
    page.goto(f"/approvals/{waiting.pk}/")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)

    statuses = page.evaluate(
        """async ([approval, agent]) => {
            const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
            const post = (url, body) => fetch(url, {method: "POST", body,
                headers: {"X-CSRFToken": token, "HX-Request": "true"}});
            const decide = new URLSearchParams({verdict: "approve"});
            return [
                (await post(`/approvals/${approval}/decide`, decide)).status,
                (await post(`/agents/${agent}/run`, new URLSearchParams({version: "1.0.0"}))).status,
            ];
        }""",
        [str(waiting.pk), "checker"],
    )
    assert statuses == [403, 403]
    waiting.refresh_from_db()
    assert waiting.status == ApprovalRequest.Status.PENDING
    assert Execution.objects.filter(agent=team["agent"]).count() == 1


def test_the_dashboard_counters_follow_runs_as_they_start_and_finish(
    live_page: Page, worker: Any, team: dict[str, Any]
) -> None:
    page = live_page
    log_in(page, "alice")
    page.goto("/dashboard/")
    live(page)
    mark_page(page)
    runs_today = page.locator('[data-counter="runs-today"] .figure')
    running = page.locator('[data-counter="running"] .figure')
    expect(runs_today).to_have_text("0")
    client = factories.api_client(team["owner"])
    client.post("/api/v1/agents/checker/execute", {"input": {}}, format="json")
    expect(runs_today).to_have_text("1")
    expect(running).to_have_text("1", timeout=20_000)
    expect(running).to_have_text("0", timeout=20_000)
    expect(page.locator('[data-counter="runs-today"]')).to_contain_text("1 of 1 finished")
    assert_not_reloaded(page)
