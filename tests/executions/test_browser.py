"""The Run form in a real browser (Debian's Chromium through Playwright): an operator opens
an agent, fills the form generated from its input schema, is told in place what the schema
refuses, corrects it, and lands on the new execution's page. No worker runs here, so the run
stays queued."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from executions.models import Execution
from tests import factories
from tests.browser import log_in, open_agents_list

pytestmark = pytest.mark.browser


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "Candidate", "pattern": "^[A-Z]"},
        "email": {"type": "string", "format": "email", "title": "E-mail"},
        "priority": {"type": "string", "enum": ["low", "normal", "high"], "default": "normal"},
        "count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        "urgent": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "title": "Tags"},
    },
    "required": ["name", "email"],
}


def test_operator_runs_an_agent_from_the_generated_form(page: Page, owner: Any) -> None:
    factories.runnable_agent(owner, name="recruiter", input_schema=SCHEMA)
    log_in(page, "alice")
    open_agents_list(page)
    page.get_by_role("link", name="recruiter", exact=True).click()
    expect(page).to_have_url(re.compile(r"/agents/recruiter/$"))

    run = page.locator("#run")
    expect(run.get_by_role("heading", name="Run")).to_be_visible()
    # the form follows the schema: defaults filled in, one control per property
    expect(run.get_by_label("priority")).to_have_value("normal")
    expect(run.get_by_label("count")).to_have_value("3")
    expect(run.get_by_label("E-mail")).to_have_attribute("type", "email")
    expect(run.get_by_label("urgent")).not_to_be_checked()

    run.get_by_label("Candidate").fill("grace Hopper")  # the schema wants a capital first
    run.get_by_label("E-mail").fill("grace@company.com")
    run.get_by_label("priority").select_option("high")
    run.get_by_label("count").fill("4")
    run.get_by_label("urgent").check()
    run.get_by_label("Tags").fill("navy\ncobol")
    page.evaluate("window.__marker = 1")
    run.get_by_role("button", name="Run 1.0.0").click()

    # the service's refusal lands next to the field, in place, with what was typed kept
    error = page.locator('[data-property="input.name"] .errors')
    expect(error).to_contain_text("'grace Hopper' does not match '^[A-Z]'")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    expect(run.get_by_label("E-mail")).to_have_value("grace@company.com")
    expect(run.get_by_label("priority")).to_have_value("high")
    assert Execution.objects.count() == 0

    run.get_by_label("Candidate").fill("Grace Hopper")
    run.get_by_role("button", name="Run 1.0.0").click()

    expect(page).to_have_url(re.compile(r"/executions/[0-9a-f-]{36}/$"))
    expect(page.locator(".messages")).to_contain_text("Run of recruiter 1.0.0 started.")
    expect(page.locator("#execution-status")).to_have_text("Queued")
    expect(page.locator("#execution")).to_contain_text("Queued: waiting for a worker.")
    shown_input = json.loads(page.locator("#execution-input").inner_text())
    expected = {
        "name": "Grace Hopper",
        "email": "grace@company.com",
        "priority": "high",
        "count": 4,
        "urgent": True,
        "tags": ["navy", "cobol"],
    }
    assert shown_input == expected
    execution = Execution.objects.get()
    assert page.url.endswith(f"/executions/{execution.pk}/")
    assert (execution.status, execution.input, execution.trigger_source) == (
        "queued",
        expected,
        "manual",
    )
