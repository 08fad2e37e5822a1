"""Login throttling (django-axes): wrong passwords for one username from one address lock
that pair out of the console's and the admin's login for a cool-off; the lockout answer is
the lockout page with 429; other users and other addresses are not locked."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from controlplane.models import AuditEvent
from tests import factories
from tests.browser import PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = 5


def attempt(
    username: str, password: str, *, ip: str = "203.0.113.7", path: str = "/login/"
) -> tuple[Any, Client]:
    client = Client(REMOTE_ADDR=ip)
    response = client.post(path, {"username": username, "password": password})
    return response, client


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail(username: str, times: int, **where: str) -> list[int]:
    return [attempt(username, "wrong", **where)[0].status_code for _ in range(times)]


def test_the_limit_is_five_by_username_and_address(settings: Any) -> None:
    assert settings.AXES_FAILURE_LIMIT == LIMIT
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"


def test_wrong_passwords_lock_the_user_out_until_the_cool_off(
    settings: Any,
) -> None:
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)
    factories.user("alice", role="operator")

    statuses = fail("alice", LIMIT)

    assert statuses[: LIMIT - 1] == [200] * (LIMIT - 1)  # the form again, with its error
    assert statuses[-1] == 429
    refused, client = attempt("alice", PASSWORD)
    assert refused.status_code == 429
    assert not signed_in(client)
    page = refused.content.decode()
    assert "Too many sign-in attempts" in page
    assert "<strong>alice</strong>" in page
    assert "Content-Security-Policy" in refused

    time.sleep(2.2)
    allowed, client = attempt("alice", PASSWORD)
    assert allowed.status_code == 302
    assert signed_in(client)


def test_the_admin_login_shares_the_lockout() -> None:
    factories.user("root", role="admin")

    assert fail("root", LIMIT - 1, path="/admin/login/") == [200] * (LIMIT - 1)
    assert attempt("root", "wrong")[0].status_code == 429  # the fifth, on the console's form

    for path in ("/admin/login/", "/login/"):
        refused, client = attempt("root", PASSWORD, path=path)
        assert refused.status_code == 429, path
        assert not signed_in(client)


def test_another_user_or_another_address_is_not_locked() -> None:
    factories.user("alice", role="operator")
    factories.user("bob", role="operator")
    fail("alice", LIMIT)
    assert attempt("alice", PASSWORD)[0].status_code == 429

    bob, bob_client = attempt("bob", PASSWORD)
    elsewhere, alice_elsewhere = attempt("alice", PASSWORD, ip="198.51.100.20")

    assert bob.status_code == 302 and signed_in(bob_client)
    assert elsewhere.status_code == 302 and signed_in(alice_elsewhere)


def test_a_sign_in_resets_the_count() -> None:
    factories.user("alice", role="operator")
    fail("alice", LIMIT - 1)
    assert attempt("alice", PASSWORD)[0].status_code == 302

    assert fail("alice", LIMIT - 1) == [200] * (LIMIT - 1)
    assert attempt("alice", PASSWORD)[0].status_code == 302


def test_sign_ins_and_refused_ones_are_still_audited() -> None:
    alice = factories.user("alice", role="operator")
    assert attempt("alice", PASSWORD)[0].status_code == 302
    fail("alice", LIMIT)
    assert attempt("alice", PASSWORD)[0].status_code == 429

    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))

    assert actions[-(LIMIT + 2) :] == ["auth.login"] + ["auth.login_failed"] * (LIMIT + 1)
    assert AuditEvent.objects.filter(action="auth.login", actor_user_id=alice.pk).count() == 1
