"""Shared fixtures: real Redis (embedded when REDIS_URL is unset), real users with roles,
the owner / permitted other / outsider trio, API clients that send real API keys."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests import factories
from tests.processes import celery_worker

pytest_plugins = ["tests.browser"]  # the real-browser fixtures: browser, page

_embedded_redis = None


def pytest_configure(config: pytest.Config) -> None:
    global _embedded_redis
    # Test users' passwords need no brute-force resistance; hashing them slowly costs seconds.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    if settings.EMBEDDED_REDIS:
        from controlplane.embedded_redis import EmbeddedRedis

        _embedded_redis = EmbeddedRedis(settings.EMBEDDED_REDIS_SOCKET, settings.VAR_DIR / "redis")
        _embedded_redis.start()
        import redis

        # Our own server: start from a clean slate (no messages left by an earlier run).
        redis.Redis.from_url(settings.REDIS_URL).flushall()


def restart_embedded_redis() -> None:
    """Stop and start the embedded Redis (a restart, as after a crash or an upgrade)."""
    assert _embedded_redis is not None
    _embedded_redis.stop()
    _embedded_redis.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _embedded_redis is not None:
        _embedded_redis.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests need Chromium. Where it is missing they are skipped, except when
    CONTROLPLANE_REQUIRE_BROWSER=1 (CI), where a missing browser is a failure."""
    if shutil.which("chromium") or os.environ.get("CONTROLPLANE_REQUIRE_BROWSER") == "1":
        return
    skip = pytest.mark.skip(reason="chromium is not installed (apt-get install -y chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def fresh_policy_index() -> None:
    """Policies a test made are rolled back with it, where no commit renewed the policy
    index's version: every test starts with every process's index out of date."""
    from policies.engine import index_changed

    index_changed()


@pytest.fixture
def admin_user(db: Any) -> Any:
    return factories.user("root", role="admin")


@pytest.fixture
def owner(db: Any) -> Any:
    """alice: an operator who owns the agent."""
    return factories.user("alice", role="operator", teams=["team-a"])


@pytest.fixture
def other(db: Any) -> Any:
    """bob: an operator permitted on the agent through its team."""
    return factories.user("bob", role="operator", teams=["team-a"])


@pytest.fixture
def outsider(db: Any) -> Any:
    """charlie: an operator with no right on the agent."""
    return factories.user("charlie", role="operator", teams=["team-b"])


@pytest.fixture
def viewer(db: Any) -> Any:
    return factories.user("vera", role="viewer", teams=["team-a"])


@pytest.fixture
def agent(owner: Any, other: Any) -> Any:
    """job-application-agent, registered by alice and shared with team-a, version 1.2.0
    as a draft."""
    return factories.agent(owner, team="team-a")


@pytest.fixture
def api_for() -> Callable[..., APIClient]:
    """An API client that authenticates with a real API key of the user's role."""

    def make(user: Any, role: str | None = None) -> APIClient:
        return factories.api_client(user, role) if user is not None else APIClient()

    return make


@pytest.fixture(scope="module")
def live_worker(django_db_setup: Any) -> Iterator[str]:
    """A real Celery worker process on the test database and Redis (module-scoped: it is
    gone again when the next module starts)."""
    with celery_worker() as worker:
        yield worker.hostname
