"""The Content-Security-Policy in a real browser (Debian's Chromium through Playwright): every
console page, the API docs and the admin load with no violation reported (neither a
``securitypolicyviolation`` event nor a "Content Security Policy" console message), and still
work: HTMX swaps, the confirm before a key is revoked, Swagger UI rendering the schema, and
the live websocket following changes made elsewhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Dialog, Page, expect

from agents.models import Agent
from approvals.services import approval_decide
from controlplane.access import Actor
from controlplane.models import APIKey
from executions.models import Execution
from tests import factories
from tests.approvals.factories import approval_policy, pending_run
from tests.browser import log_in

pytestmark = pytest.mark.browser

LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolation([event.violatedDirective, event.blockedURI,
                         event.sourceFile + ":" + event.lineNumber].join(" "));
});
"""


class Violations:
    """What the browser reported for the page now open, and for every page so far."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.all: list[str] = []
        page.context.expose_function("__cspViolation", self._reported)
        page.context.add_init_script(LISTENER)
        page.on("console", self._console)

    def _reported(self, violation: str) -> None:
        self.all.append(violation)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.all.append(f"console: {message.text}")

    def settle(self) -> None:
        """Let events queued by the page's last parsing and scripts be delivered."""
        self.page.evaluate(
            "() => new Promise((done) => requestAnimationFrame(() => setTimeout(done, 150)))"
        )

    def during(self, path: str, ready: str) -> list[str]:
        before = len(self.all)
        response = self.page.goto(path)
        assert response is not None and response.ok, f"{path}: {response and response.status}"
        expect(self.page.locator(ready).first).to_be_visible()
        self.settle()
        return self.all[before:]


@pytest.fixture
def violations(page: Page) -> Iterator[Violations]:
    yield Violations(page)


@pytest.fixture
def world(db: Any) -> dict[str, Any]:
    """One of everything the pages show: an agent with a draft, a runnable agent with a run,
    a run waiting for approval, a policy, an API key."""
    root = factories.user("root", role="admin", email="boss@company.com")
    alice = factories.user("alice", role="operator", teams=["team-a"])
    draft = factories.agent(alice, team="team-a")
    runner = factories.runnable_agent(alice, name="checker", team="team-a")
    policy = approval_policy(root, approvers=["boss@company.com"])
    waiting = pending_run(runner, alice, {"invoice": "INV-7"})
    factories.api_key(root)
    return {"draft": draft, "runner": runner, "approval": waiting, "policy": policy}


def test_every_page_loads_without_a_csp_violation_and_still_works(
    page: Page, violations: Violations, world: dict[str, Any]
) -> None:
    assert violations.during("/login/", "#id_username") == []
    assert violations.during("/admin/login/", "#id_username") == []
    log_in(page, "root")
    draft: Agent = world["draft"]
    run = Execution.objects.filter(agent=world["runner"]).first()
    assert run is not None
    policy = world["policy"].pk
    pages = [
        ("/dashboard/", "main h1"),
        ("/agents/", "main h1"),
        ("/agents/new", "main form"),
        (f"/agents/{draft.name}/", "#agent-title"),
        (f"/agents/{draft.name}/versions/new", "main form"),
        (f"/agents/{draft.name}/versions/1.2.0/edit", "main form"),
        (f"/agents/{draft.name}/diff?from=1.2.0&to=1.2.0", "main"),
        ("/agents/checker/", "#run-form"),
        ("/executions/", "main h1"),
        (f"/executions/{run.pk}/", "#execution"),
        ("/policies/", "main h1"),
        ("/policies/new", "main form"),
        ("/policies/dry-run", "main form"),
        ("/approvals/", f'article[data-approval="{world["approval"].pk}"]'),
        (f"/approvals/{world['approval'].pk}/", "#approval"),
        ("/audit/", "main h1"),
        ("/api-keys/", "main h1"),
        ("/admin/", "#content"),
        ("/admin/agents/agent/", "#result_list"),
        (f"/admin/agents/agent/{draft.pk}/change/", "#content-main form"),
        (f"/admin/agents/agent/{draft.pk}/permissions/", "#content-main form"),
        (f"/policies/{policy}/", "main form"),
        (f"/policies/{policy}/delete", "main form"),
    ]
    found = {path: violations.during(path, ready) for path, ready in pages}
    assert {path: seen for path, seen in found.items() if seen} == {}

    # Swagger UI: its split script ran and rendered the schema it fetched.
    assert violations.during("/api/docs/", "#swagger-ui .information-container") == []
    expect(page.locator("#swagger-ui")).to_contain_text("Agent Control Plane API")
    expect(page.locator("#swagger-ui .opblock").first).to_be_visible()
    violations.settle()

    # An HTMX action: promote the draft in place (no page load).
    page.goto(f"/agents/{draft.name}/")
    page.evaluate("window.__marker = 1")
    row = page.locator('#versions tr[data-version="1.2.0"]')
    row.get_by_role("button", name="Promote to staging").click()
    expect(row.locator(".badge")).to_have_text("staging")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"

    # The filter form's HTMX swap (hx-trigger on input).
    page.goto("/agents/")
    page.get_by_label("Search").fill("checker")
    expect(page.get_by_role("link", name="checker", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=draft.name, exact=True)).to_have_count(0)

    # The confirm before a key is revoked (static/js/confirm.js, not onsubmit=).
    key = APIKey.objects.get(revoked=False)
    page.goto("/api-keys/")
    answers = iter([False, True])

    def answer(dialog: Dialog) -> None:
        assert dialog.message == f"Revoke {key.prefix}? This cannot be undone."
        dialog.accept() if next(answers) else dialog.dismiss()

    page.on("dialog", answer)
    page.get_by_role("button", name="Revoke").click()
    violations.settle()
    key.refresh_from_db()
    assert not key.revoked
    page.get_by_role("button", name="Revoke").click()
    expect(page.locator(".messages")).to_contain_text(f"Key {key.prefix} (test) is revoked.")
    key.refresh_from_db()
    assert key.revoked

    violations.settle()
    assert violations.all == []

    # The listener does hear a violation: an inline script the policy refuses.
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.x = 1';"
        " document.head.appendChild(s); }"
    )
    violations.settle()
    assert any("script-src" in seen for seen in violations.all), violations.all
    assert page.evaluate("window.x") is None


@pytest.mark.django_db(transaction=True)
def test_the_live_queue_follows_changes_under_the_policy(live_page: Page) -> None:
    """The websocket (connect-src 'self') connects and the queue follows a decision made
    elsewhere, with no violation."""
    from tests.console.test_live_browser import log_in as log_in_with_session

    page = live_page
    seen = Violations(page)
    boss = factories.user("boss", role="operator", teams=["team-a"], email="boss@company.com")
    bob = factories.user("bob", role="operator", teams=["team-a"], email="bob@company.com")
    owner = factories.user("alice", role="operator", teams=["team-a"])
    agent = factories.runnable_agent(owner, name="checker", team="team-a")
    approval_policy(
        factories.user("root", role="admin"), approvers=["boss@company.com", "bob@company.com"]
    )
    first = pending_run(agent, owner, {"invoice": "INV-1"})
    log_in_with_session(page, bob.username)
    page.goto("/approvals/")
    expect(page.locator("body")).to_have_attribute("data-live-state", "open")
    expect(page.locator(f'article[data-approval="{first.pk}"]')).to_be_visible()

    approval_decide(actor=Actor(user=boss), request=first, verdict="approve")
    expect(page.locator(f'article[data-approval="{first.pk}"]')).to_have_count(0)
    second = pending_run(agent, owner, {"invoice": "INV-2"})
    expect(page.locator(f'article[data-approval="{second.pk}"]')).to_be_visible()
    expect(page.locator("#nav-approvals-count")).to_have_text("1 pending")

    seen.settle()
    assert seen.all == []
    assert re.match(r"http://127\.0\.0\.1:\d+/approvals/$", page.url)
