"""The agents pages in a real browser (Debian's Chromium through Playwright): an operator
signs in, promotes, activates and compares versions by clicking, and every HTMX swap happens
without a page load; a viewer sees no buttons."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from agents.models import Agent
from tests import factories
from tests.browser import log_in, open_agents_list

pytestmark = pytest.mark.browser


def open_agent(page: Page, name: str = "job-application-agent") -> None:
    open_agents_list(page)
    page.get_by_role("link", name=name, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/agents/{name}/$"))
    expect(page.locator("#agent-title")).to_contain_text(name)


def mark_page(page: Page) -> None:
    """A marker that survives HTMX swaps and dies with a page load."""
    page.evaluate("window.__marker = 1")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"


def stage_badge(page: Page, version: str) -> Any:
    return page.locator(f'#versions tr[data-version="{version}"] .badge')


def test_operator_promotes_activates_and_compares_without_reloads(
    page: Page, owner: Any, agent: Agent
) -> None:
    log_in(page, "alice")
    open_agent(page)
    expect(stage_badge(page, "1.2.0")).to_have_text("draft")
    mark_page(page)

    row = page.locator('#versions tr[data-version="1.2.0"]')
    row.get_by_role("button", name="Promote to staging").click()

    expect(stage_badge(page, "1.2.0")).to_have_text("staging")
    expect(page.locator("#agent-panel [role=status]")).to_have_text("Version 1.2.0 is now staging.")
    assert_not_reloaded(page)

    row.get_by_role("button", name="Promote to production").click()
    expect(stage_badge(page, "1.2.0")).to_have_text("production")
    assert_not_reloaded(page)

    page.get_by_role("button", name="Activate").click()
    expect(page.locator("#agent-title .badge")).to_have_text("active")
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    expect(page.get_by_role("button", name="Activate")).to_have_count(0)
    assert_not_reloaded(page)
    agent.refresh_from_db()
    assert agent.status == "active"
    assert agent.production_version.version == "1.2.0"

    # a second version: cloned from the first, then edited as JSON
    page.get_by_role("link", name="New draft version").click()
    expect(page.get_by_label("Version")).to_have_value("1.2.1")
    page.get_by_role("button", name="Create draft").click()
    expect(page).to_have_url(re.compile(r"/versions/1\.2\.1/edit$"))
    expect(page.locator(".messages")).to_contain_text("Draft 1.2.1 created.")
    editor = page.get_by_label("Config")
    config = json.loads(editor.input_value())
    config["capabilities"]["execute"] = True
    editor.fill(json.dumps(config, indent=2))
    page.get_by_role("button", name="Save draft").click()
    expect(page).to_have_url(re.compile(r"/agents/job-application-agent/$"))
    expect(page.locator(".messages")).to_contain_text("Draft 1.2.1 saved.")
    expect(stage_badge(page, "1.2.1")).to_have_text("draft")
    # the buttons' cell stays a table cell, level with the rest of its row
    cells = page.locator('#versions tr[data-version="1.2.1"] td')
    assert cells.last.evaluate("cell => getComputedStyle(cell).display") == "table-cell"
    assert cells.last.bounding_box()["y"] == cells.first.bounding_box()["y"]

    # the comparison loads by itself (newest two), and the form swaps in another one
    expect(page.locator("#diff-result")).to_contain_text("from 1.2.0 to 1.2.1")
    mark_page(page)
    page.locator("#diff-from").select_option("1.2.1")
    page.locator("#diff-to").select_option("1.2.0")
    page.get_by_role("button", name="Compare").click()

    result = page.locator("#diff-result")
    expect(result).to_contain_text("2 changes from 1.2.1 to 1.2.0")
    execute = result.locator("tr", has=page.locator("code", has_text="capabilities.execute"))
    expect(execute.locator("td").nth(1)).to_have_text("changed")
    expect(execute.locator("td").nth(2)).to_have_text("true")
    expect(execute.locator("td").nth(3)).to_have_text("false")
    expect(page).to_have_url(re.compile(r"/agents/job-application-agent/$"))
    assert_not_reloaded(page)


def test_refused_action_shows_the_error_in_place(page: Page, owner: Any, agent: Agent) -> None:
    log_in(page, "alice")
    open_agent(page)
    mark_page(page)

    page.get_by_role("button", name="Activate").click()

    expect(page.locator("#agent-panel [role=alert]")).to_contain_text(
        "has no production version to run: promote one first."
    )
    expect(page.locator("#agent-title .badge")).to_have_text("draft")
    assert_not_reloaded(page)
    agent.refresh_from_db()
    assert agent.status == "draft"


def test_viewer_sees_the_agent_but_no_buttons(page: Page, viewer: Any, agent: Agent) -> None:
    log_in(page, "vera")
    open_agent(page)

    expect(stage_badge(page, "1.2.0")).to_have_text("draft")
    expect(page.get_by_role("button", name=re.compile("Promote|Activate"))).to_have_count(0)
    expect(page.locator("#agent-panel button")).to_have_count(0)
    expect(page.get_by_role("link", name="New draft version")).to_have_count(0)


def test_list_search_swaps_the_table_and_updates_the_address(
    page: Page, owner: Any, agent: Agent
) -> None:
    factories.agent(owner, payload=factories.LLM_AGENT)
    log_in(page, "alice")
    open_agents_list(page)
    rows = page.locator("#agent-table tbody tr")
    expect(rows).to_have_count(2)
    mark_page(page)

    page.get_by_label("Search").fill("summar")

    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("email-summarizer")
    expect(page).to_have_url(re.compile(r"/agents/\?.*q=summar"))
    assert_not_reloaded(page)
