"""Real-browser helpers: Debian's Chromium driven by Playwright's sync API.

Playwright's browsers are never downloaded (no ``playwright install``): the tests drive the
system's ``chromium`` binary.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

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


@contextmanager
def chromium() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
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
