"""The policies pages in a real browser (Debian's Chromium through Playwright): an operator
picks a type and gets its fields without a page load, fills them in by clicking, saves,
disables the policy from the list in place, and asks the dry run what would happen."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from agents.models import Agent
from policies.models import Policy
from tests import factories
from tests.browser import log_in

pytestmark = pytest.mark.browser


def mark_page(page: Page) -> None:
    """A marker that survives HTMX swaps and dies with a page load."""
    page.evaluate("window.__marker = 1")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"


def test_operator_creates_a_time_window_from_its_fields_and_disables_it_in_place(
    page: Page, owner: Any, agent: Agent
) -> None:
    log_in(page, "alice")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Policies").click()
    expect(page.locator(".empty")).to_contain_text("No policies yet")
    page.get_by_role("link", name="New policy").click()
    expect(page.locator("#rules-fields")).to_have_attribute("data-type", "rate_limit")
    mark_page(page)

    page.get_by_label("Type").select_option("time_window")

    rules = page.locator('#rules-fields[data-type="time_window"]')
    expect(rules).to_be_visible()
    assert_not_reloaded(page)
    page.get_by_label("Policy name").fill("job-hours")
    page.get_by_label("Applies to").select_option("agent")
    page.get_by_label("Agent", exact=True).select_option("job-application-agent")
    for day in ("SAT", "SUN"):
        rules.get_by_label(day, exact=True).uncheck()
    for hour in [*range(9), *range(18, 24)]:
        rules.get_by_label(f"{hour:02d}", exact=True).uncheck()
    rules.get_by_label("Timezone").fill("America/New_York")
    rules.get_by_label("Outside the window").select_option("delay_until_allowed")
    page.get_by_role("button", name="Create policy").click()

    expect(page).to_have_url(re.compile(r"/policies/$"))
    expect(page.locator(".messages")).to_contain_text("Policy job-hours created.")
    policy = Policy.objects.get(policy_name="job-hours")
    assert (policy.applies_to, policy.target_agent) == ("agent", agent)
    assert policy.rules == {
        "allowed_days": ["MON", "TUE", "WED", "THU", "FRI"],
        "allowed_hours": list(range(9, 18)),
        "timezone": "America/New_York",
        "blackout_dates": [],
        "action_on_violation": "delay_until_allowed",
    }

    mark_page(page)
    row = page.locator('tr[data-policy="job-hours"]')
    row.get_by_role("button", name="Disable").click()
    expect(row.locator(".badge.policy-disabled")).to_have_text("disabled")
    expect(row.get_by_role("button", name="Enable")).to_be_visible()
    assert_not_reloaded(page)
    policy.refresh_from_db()
    assert not policy.enabled


def test_a_rules_error_is_shown_on_its_field(page: Page, owner: Any, agent: Agent) -> None:
    log_in(page, "alice")
    page.goto("/policies/new")
    page.get_by_label("Type").select_option("concurrency")
    expect(page.locator('#rules-fields[data-type="concurrency"]')).to_be_visible()
    page.get_by_label("Policy name").fill("two-at-once")
    page.get_by_label("Applies to").select_option("agent")
    page.get_by_label("Agent", exact=True).select_option("job-application-agent")
    page.get_by_label("Max running at once").fill("0")
    page.get_by_role("button", name="Create policy").click()

    field = page.locator('[data-field="max_running"]')
    expect(field.locator(".errors")).to_contain_text("rules.max_running:")
    assert not Policy.objects.exists()


def test_dry_run_shows_which_policy_decided(page: Page, owner: Any, admin_user: Any) -> None:
    factories.runnable_agent(owner, name="runner")
    factories.policy(
        admin_user,
        "weekdays",
        "time_window",
        {"allowed_days": ["MON", "TUE", "WED", "THU", "FRI"], "timezone": "UTC"},
    )
    log_in(page, "alice")
    page.goto("/policies/dry-run")
    mark_page(page)

    page.get_by_label("Agent").select_option("runner")
    page.get_by_label("At (UTC)").fill("2026-01-17T12:00")  # a Saturday
    page.get_by_role("button", name="Evaluate").click()

    expect(page.locator("#decision [data-outcome]")).to_have_text("deny")
    expect(page.locator('#trace tr[data-policy="weekdays"] .badge')).to_have_text("deny")
    assert_not_reloaded(page)
