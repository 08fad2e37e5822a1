"""The approvers' pages in a real browser (Debian's Chromium through Playwright): an approver
follows the navigation's Approvals link (with its pending count), writes notes and approves
a run from the queue in place, rejects another from its own page with the keyboard at a
phone's width, and is shown in place why a request someone else settled first can no
longer be approved. No worker runs here, so an approved run stays queued."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from approvals.models import ApprovalRequest
from approvals.services import approval_decide
from controlplane.access import Actor
from executions.models import Execution
from tests import factories
from tests.approvals.factories import approval_policy, pending_run
from tests.browser import log_in

pytestmark = pytest.mark.browser

A = ApprovalRequest.Status
S = Execution.Status


def mark_page(page: Page) -> None:
    """A marker that survives HTMX swaps and dies with a page load."""
    page.evaluate("window.__marker = 1")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"


@pytest.fixture
def boss(db: Any) -> Any:
    return factories.user("boss", role="operator", email="boss@company.com")


@pytest.fixture
def runner(owner: Any, admin_user: Any) -> Any:
    agent = factories.runnable_agent(owner, name="runner", team="team-a")
    approval_policy(admin_user, approvers=["boss@company.com", "bob@company.com"])
    return agent


def test_approver_approves_from_the_queue_in_place(
    page: Page, boss: Any, owner: Any, runner: Any
) -> None:
    waiting = pending_run(runner, owner, {"candidate": "Grace Hopper"})
    log_in(page, "boss")

    nav = page.get_by_role("navigation", name="Main")
    expect(nav.locator("#nav-approvals-count")).to_have_text("1 pending")
    nav.get_by_role("link", name="Approvals").click()
    expect(page).to_have_url(re.compile(r"/approvals/$"))
    expect(page.locator('[data-stat="pending"]')).to_have_text("1")

    card = page.locator(f'article[data-approval="{waiting.pk}"]')
    expect(card.locator("[data-payload]")).to_contain_text('"candidate": "Grace Hopper"')
    card.get_by_label("Notes").fill("Checked the candidate.")
    mark_page(page)
    card.get_by_role("button", name="Approve").click()

    expect(card).to_have_attribute("data-status", "approved")
    expect(card.get_by_role("status")).to_have_text("Approved: the run is queued.")
    expect(card.locator("[data-outcome]")).to_contain_text("Approved by boss")
    expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    assert_not_reloaded(page)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.review_notes) == (A.APPROVED, "Checked the candidate.")
    assert Execution.objects.get(pk=waiting.execution_id).status == S.QUEUED


def test_approver_rejects_from_the_request_page_by_keyboard_on_a_phone(
    page: Page, boss: Any, owner: Any, runner: Any
) -> None:
    waiting = pending_run(runner, owner)
    page.set_viewport_size({"width": 375, "height": 740})
    log_in(page, "boss")
    page.goto(f"/approvals/{waiting.pk}/")
    section = page.locator("#approval")
    approve = section.get_by_role("button", name="Approve")
    reject = section.get_by_role("button", name="Reject")
    expect(reject).to_be_visible()
    # Nothing wider than the phone: no sideways scrolling to reach the buttons.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    mark_page(page)

    section.get_by_label("Notes").focus()
    page.keyboard.type("Not during the freeze.")
    page.keyboard.press("Tab")
    expect(approve).to_be_focused()
    page.keyboard.press("Tab")
    expect(reject).to_be_focused()
    page.keyboard.press("Enter")

    expect(section).to_have_attribute("data-status", "rejected")
    row = section.locator('#decisions tr[data-verdict="reject"]')
    expect(row).to_contain_text("boss")
    expect(row).to_contain_text("Not during the freeze.")
    expect(section.get_by_role("button", name="Reject")).to_have_count(0)
    assert_not_reloaded(page)
    run = Execution.objects.get(pk=waiting.execution_id)
    assert run.status == S.CANCELLED
    assert "Not during the freeze." in run.error_message
    # boss is listed by e-mail but is not on the agent's team: the run is not his to open.
    expect(section.get_by_role("link", name=str(waiting.execution_id))).to_have_count(0)


def test_a_request_settled_by_someone_else_shows_why_in_place(
    page: Page, boss: Any, other: Any, owner: Any, runner: Any
) -> None:
    waiting = pending_run(runner, owner)
    log_in(page, "boss")
    page.goto("/approvals/")
    card = page.locator(f'article[data-approval="{waiting.pk}"]')
    expect(card.get_by_role("button", name="Approve")).to_be_visible()
    mark_page(page)

    approval_decide(actor=Actor(user=other), request=waiting, verdict="reject", notes="no")
    card.get_by_role("button", name="Approve").click()

    expect(card.get_by_role("alert")).to_have_text("This request is already rejected (by bob).")
    expect(card).to_have_attribute("data-status", "rejected")
    expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    assert_not_reloaded(page)
    waiting.refresh_from_db()
    assert list(waiting.decisions.values_list("user_label", "verdict")) == [("bob", "reject")]


def test_the_run_page_links_to_its_waiting_request(
    page: Page, boss: Any, owner: Any, runner: Any
) -> None:
    waiting = pending_run(runner, owner)
    log_in(page, "alice")
    page.goto(f"/executions/{waiting.execution_id}/")

    page.locator("#execution-approval").get_by_role("link").click()

    expect(page).to_have_url(re.compile(rf"/approvals/{waiting.pk}/$"))
    expect(page.locator("#approval-hash")).to_have_text(waiting.action_hash)
    # alice triggered it and is not listed: no buttons, and she is told why.
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.locator(".refusal")).to_contain_text("You are not an approver")
