"""Real-browser helpers: Debian's Chromium driven by Playwright's sync API.

Playwright's browsers are never downloaded (no ``playwright install``): the tests drive the
system's ``chromium`` binary.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = ROOT / "var" / "test-artifacts"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's


@contextmanager
def chromium() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CONTROLPLANE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


class KeepReports:
    """Keeps each phase's report on its test item (``item.rep_setup``, ``item.rep_call``),
    so that a fixture's teardown knows whether the test failed."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        setattr(item, f"rep_{report.when}", report)
        return report


def keep_reports(config: pytest.Config) -> None:
    """Register ``KeepReports`` once; the fixture that needs it calls this in its setup,
    before the reports it reads are made."""
    if not config.pluginmanager.has_plugin("controlplane-keep-reports"):
        config.pluginmanager.register(KeepReports(), "controlplane-keep-reports")


def failed(node: pytest.Item) -> bool:
    return any(
        getattr(getattr(node, f"rep_{when}", None), "failed", False) for when in ("setup", "call")
    )


def save_artifacts(page: Page, node: pytest.Item) -> Path:
    """A full-page screenshot and the page's HTML under var/test-artifacts/."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", node.nodeid).strip("_")
    screenshot = ARTIFACTS_DIR / f"{stem}.png"
    page.screenshot(path=str(screenshot), full_page=True)
    (ARTIFACTS_DIR / f"{stem}.html").write_text(page.content(), encoding="utf-8")
    return screenshot


# --- fixtures (a pytest plugin: tests/conftest.py lists this module in pytest_plugins) ------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with pytest.MonkeyPatch.context() as patch:
        # Playwright's sync API keeps an asyncio loop in this thread, so Django would refuse
        # the ORM calls the fixtures and assertions make here; they are plain sync calls.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with chromium() as launched:
            yield launched


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser, live_server: Any) -> Iterator[Page]:
    """A fresh browser context on the live server; on failure, a screenshot and the page's
    HTML are saved under var/test-artifacts/."""
    yield from _page(request, browser, live_server.url)


@pytest.fixture
def asgi_url(django_db_setup: Any) -> Iterator[str]:
    """The real ASGI server (uvicorn, websockets included) on the test database, for the live
    pages; the tests using it need ``django_db(transaction=True)`` so that it sees their data.
    One per test: the flush between transactional tests gives content types and permissions
    new ids, which a longer-lived process would still hold in its caches."""
    from tests.processes import asgi_server

    with asgi_server() as url:
        yield url


@pytest.fixture
def live_page(request: pytest.FixtureRequest, browser: Browser, asgi_url: str) -> Iterator[Page]:
    """Like ``page``, on the ASGI server: the pages' websockets work."""
    yield from _page(request, browser, asgi_url)


def _page(request: pytest.FixtureRequest, browser: Browser, base_url: str) -> Iterator[Page]:
    keep_reports(request.config)
    context = browser.new_context(base_url=base_url)
    context.set_default_timeout(10_000)
    opened = context.new_page()
    try:
        yield opened
    finally:
        if failed(request.node):
            path = save_artifacts(opened, request.node)
            print(f"screenshot: {path}")  # noqa: T201 - shown with the failure report
        context.close()


def log_in(page: Page, username: str) -> None:
    """Through the login form, as a person does; lands on the dashboard."""
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    expect(page.locator(".whoami")).to_contain_text(username)


def open_agents_list(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Agents").click()
    expect(page).to_have_url(re.compile(r"/agents/$"))
