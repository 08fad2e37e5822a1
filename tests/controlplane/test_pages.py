"""The core console pages: the audit log, API keys, logging in and out, the navigation.

alice owns the agent, bob shares it through team-a, charlie is an outsider, vera a viewer of
team-a and root an admin (see tests/conftest.py).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone
from pytest_django.asserts import (
    assertContains,
    assertNotContains,
    assertRedirects,
    assertTemplateNotUsed,
    assertTemplateUsed,
)
from rest_framework.test import APIClient

from agents import services as agent_services
from agents.models import Agent
from controlplane import services as core_services
from controlplane.access import Actor
from controlplane.models import APIKey, AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
PASSWORD = "correct horse battery staple"


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def html(response: Any) -> str:
    return response.content.decode()


def audit_rows(response: Any) -> list[tuple[str, str, str]]:
    """(actor, action, target) of every row of the audit table, newest first."""
    return re.findall(
        r"<td>([^<]*)</td>\s*<td><code>([^<]+)</code></td>\s*<td>([^<]*)</td>", html(response)
    )


def actions(response: Any) -> set[str]:
    return {action for _, action, _ in audit_rows(response)}


def api_get(secret: str, path: str = "/api/v1/agents") -> Any:
    return APIClient().get(path, HTTP_AUTHORIZATION=f"Api-Key {secret}")


def new_key(user: Any, role: str, name: str = "ci-deploy") -> tuple[APIKey, str]:
    return core_services.api_key_create(actor=Actor(user=user), name=name, role=role)


def role_options(response: Any) -> list[str]:
    select = re.search(r'<select name="role"[^>]*>(.*?)</select>', html(response), re.S)
    assert select is not None, "no role select on the page"
    return re.findall(r'<option value="([^"]*)"', select.group(1))


# --- anonymous ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/audit/"),
        ("get", "/api-keys/"),
        ("post", "/api-keys/"),
        ("post", "/api-keys/abc/revoke"),
    ],
)
def test_anonymous_is_redirected_to_login(client: Client, db: Any, method: str, path: str) -> None:
    response = getattr(client, method)(path)

    assert response.status_code == 302
    assert response["Location"] == "/login/?" + urlencode({"next": path}, safe="/")
    assert not APIKey.objects.exists()


# --- audit log ----------------------------------------------------------------------------


@pytest.fixture
def history(owner: Any, other: Any, outsider: Any, agent: Agent) -> None:
    """alice registered the agent and promotes it to staging, bob promotes it to
    production; charlie signs in and creates a key of his own."""
    agent_services.agent_version_promote(actor=Actor(user=owner), agent=agent)
    agent_services.agent_version_promote(actor=Actor(user=other), agent=agent)
    Client().force_login(outsider)
    new_key(outsider, "operator", name="charlie-ci")


AGENT_ACTIONS = {
    "agent.created",
    "agent_version.created",
    "agent.promoted",
    "agent_version.staging",
    "agent_version.production",
}


@pytest.mark.parametrize(
    ("who", "sees_agent", "logins"),
    [
        ("owner", True, {"alice"}),
        ("other", True, {"bob"}),
        ("viewer", True, {"vera"}),
        ("outsider", False, {"charlie"}),
        ("admin_user", True, {"charlie", "root"}),
    ],
)
def test_audit_log_shows_only_events_the_user_may_see(
    request: Any, client: Client, history: None, who: str, sees_agent: bool, logins: set[str]
) -> None:
    """Events about agents the user may see, and the user's own; the admin sees all."""
    user = request.getfixturevalue(who)

    response = login(client, user).get("/audit/")

    assert response.status_code == 200
    assertTemplateUsed(response, "controlplane/audit.html")
    seen = actions(response)
    if sees_agent:
        assert seen >= AGENT_ACTIONS
        assertContains(response, "agent job-application-agent")
    else:
        assert not AGENT_ACTIONS & seen
        assertNotContains(response, "job-application-agent")
    # charlie's own doings are his and the admin's business only
    assert ("api_key.created" in seen) is ("charlie" in logins)
    assert {actor for actor, action, _ in audit_rows(response) if action == "auth.login"} == logins


def test_audit_log_rows_name_actor_action_and_target(
    client: Client, owner: Any, history: None
) -> None:
    response = login(client, owner).get("/audit/")

    rows = audit_rows(response)
    assert ("bob", "agent_version.production", "agent_version job-application-agent@1.2.0") in rows
    assert ("alice", "agent_version.staging", "agent_version job-application-agent@1.2.0") in rows
    assert ("alice", "agent.created", "agent job-application-agent") in rows
    assert rows[0][1] == "auth.login"  # newest first
    assertContains(response, "<summary>before / after</summary>")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            {"action_prefix": "agent_version."},
            {"agent_version.created", "agent_version.staging", "agent_version.production"},
        ),
        ({"actor": "BOB"}, {"agent.promoted", "agent_version.production"}),
        ({"target_type": "agent"}, {"agent.created", "agent.promoted"}),
        ({"target_type": "agent", "actor": "bob"}, {"agent.promoted"}),
        ({"action_prefix": "nothing."}, set()),
    ],
)
def test_audit_log_filters(
    client: Client,
    admin_user: Any,
    history: None,
    query: dict[str, str],
    expected: set[str],
) -> None:
    response = login(client, admin_user).get("/audit/", query)

    assert response.status_code == 200
    assert actions(response) == expected
    if not expected:
        assertContains(response, "No events match.")


def test_audit_log_since_filter_takes_the_browsers_datetime_local_value(
    client: Client, owner: Any, history: None
) -> None:
    login(client, owner)
    future = (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    past = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")

    later = client.get("/audit/", {"since": future})
    earlier = client.get("/audit/", {"since": past})

    assert audit_rows(later) == []
    assertContains(later, "No events match.")
    assertContains(later, f'name="since" type="datetime-local" value="{future}"')
    assert actions(earlier) >= AGENT_ACTIONS


def test_audit_log_invalid_filter_shows_the_error_and_no_events(
    client: Client, owner: Any, history: None
) -> None:
    response = login(client, owner).get("/audit/", {"since": "yesterday"})

    assert response.status_code == 200
    assert audit_rows(response) == []
    assertContains(response, "since: Enter a valid date/time.")


def test_audit_log_htmx_request_returns_only_the_rows(
    client: Client, owner: Any, history: None
) -> None:
    response = login(client, owner).get("/audit/", {"actor": "bob"}, headers=HTMX)

    assertTemplateUsed(response, "controlplane/_audit_rows.html")
    assertTemplateNotUsed(response, "controlplane/audit.html")
    assertNotContains(response, "<html")
    assertNotContains(response, 'class="filters"')
    assert actions(response) == {"agent.promoted", "agent_version.production"}
    assert "HX-Request" in response["Vary"]


def test_audit_log_paginates(client: Client, owner: Any) -> None:
    for index in range(55):
        new_key(owner, "operator", name=f"key-{index}")
    login(client, owner)

    first = client.get("/audit/", {"action_prefix": "api_key."})
    second = client.get("/audit/", {"action_prefix": "api_key.", "page": 2})

    assert len(audit_rows(first)) == 50
    assert len(audit_rows(second)) == 5
    assertContains(first, "Page 1 of 2 (55)")
    assertContains(first, 'href="?action_prefix=api_key.&amp;page=2" rel="next"')
    assert audit_rows(second)[-1] == ("alice", "api_key.created", "api_key key-0")


def test_audit_log_is_forbidden_to_a_role_without_it(client: Client, agent: Agent) -> None:
    service = factories.user("svc", role="agent-service")

    response = login(client, service).get("/audit/")

    assert response.status_code == 403
    assertContains(response, "Your role does not allow this.", status_code=403)
    assertNotContains(response, "agent.created", status_code=403)


# --- API keys -----------------------------------------------------------------------------


def test_created_key_is_shown_once_and_only_its_hash_is_stored(
    client: Client, owner: Any, agent: Agent
) -> None:
    login(client, owner)

    response = client.post("/api-keys/", {"name": "ci-deploy", "role": "operator"})

    assert response.status_code == 200
    shown = re.search(r'<pre class="code secret" id="new-key">([^<]+)</pre>', html(response))
    assert shown is not None
    secret = shown.group(1)
    assertContains(response, "copy it now, it is not shown again")
    assert "no-store" in response["Cache-Control"]
    key = APIKey.objects.get(name="ci-deploy")
    assert key.owner == owner
    assert key.role == "operator"
    assert secret.startswith(f"{key.prefix}.")
    stored = [str(value) for value in APIKey.objects.values().get(pk=key.pk).values()]
    assert not any(secret.split(".", 1)[1] in value for value in stored)
    assert key.hashed_key and key.hashed_key != secret
    assert secret not in str(list(AuditEvent.objects.values("before", "after")))
    # the secret works...
    listing = api_get(secret)
    assert listing.status_code == 200
    assert [item["name"] for item in listing.json()["results"]] == ["job-application-agent"]
    # ...and is never shown again
    later = client.get("/api-keys/")
    assertNotContains(later, secret)
    assertNotContains(later, 'id="new-key"')
    assertContains(later, f"<td><code>{key.prefix}</code></td>")
    assertContains(later, "<td>ci-deploy</td>")


def test_key_creation_is_audited(client: Client, owner: Any) -> None:
    login(client, owner).post("/api-keys/", {"name": "ci-deploy", "role": "operator"})

    event = AuditEvent.objects.get(action="api_key.created")
    assert event.actor_label == "alice"
    assert event.after["name"] == "ci-deploy"
    assert event.target_id == APIKey.objects.get().prefix


def test_viewer_may_pick_only_the_viewer_role(client: Client, viewer: Any) -> None:
    login(client, viewer)

    page = client.get("/api-keys/")
    refused = client.post("/api-keys/", {"name": "escalate", "role": "operator"})
    admin_refused = client.post("/api-keys/", {"name": "escalate", "role": "admin"})
    allowed = client.post("/api-keys/", {"name": "read-only", "role": "viewer"})

    assert role_options(page) == ["viewer"]
    assert refused.status_code == 400
    assertContains(refused, "Select a valid choice.", status_code=400)
    assert admin_refused.status_code == 400
    assert allowed.status_code == 200
    assert list(APIKey.objects.values_list("name", "role")) == [("read-only", "viewer")]


def test_operator_may_not_pick_the_admin_role(client: Client, owner: Any) -> None:
    login(client, owner)

    options = role_options(client.get("/api-keys/"))
    response = client.post("/api-keys/", {"name": "escalate", "role": "admin"})

    assert "operator" in options
    assert "admin" not in options
    assert response.status_code == 400
    assert not APIKey.objects.exists()


def test_admin_may_pick_every_role(client: Client, admin_user: Any) -> None:
    options = role_options(login(client, admin_user).get("/api-keys/"))

    assert set(options) == {"admin", "operator", "viewer", "agent-service"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "role": "operator"}, "This field is required."),
        (
            {"name": "old", "role": "operator", "expiry_date": "2001-01-01T00:00"},
            "The expiry must be in the future.",
        ),
        (
            {"name": "typo", "role": "operator", "expiry_date": "tomorrow"},
            "Enter a valid date/time.",
        ),
    ],
)
def test_invalid_key_form_shows_the_error_and_creates_nothing(
    client: Client, owner: Any, data: dict[str, str], message: str
) -> None:
    response = login(client, owner).post("/api-keys/", data)

    assertContains(response, message, status_code=400)
    assertNotContains(response, 'id="new-key"', status_code=400)
    assert not APIKey.objects.exists()


def test_key_with_a_future_expiry_is_created(client: Client, owner: Any) -> None:
    expiry = (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")

    response = login(client, owner).post(
        "/api-keys/", {"name": "temp", "role": "operator", "expiry_date": expiry}
    )

    assert response.status_code == 200
    key = APIKey.objects.get()
    assert key.expiry_date is not None
    assert key.expiry_date.strftime("%Y-%m-%dT%H:%M") == expiry
    assertContains(response, key.expiry_date.strftime("%Y-%m-%d %H:%M"))


def test_role_without_key_permission_sees_no_create_form(client: Client) -> None:
    service = factories.user("svc", role="agent-service")
    login(client, service)

    page = client.get("/api-keys/")
    forged = client.post("/api-keys/", {"name": "x", "role": "agent-service"})

    assert page.status_code == 200
    assertNotContains(page, "Create a key")
    assertContains(page, "No keys yet.")
    assert forged.status_code == 400
    assert not APIKey.objects.exists()


def test_keys_page_lists_own_keys_only_and_admins_see_all(
    client: Client, owner: Any, other: Any, admin_user: Any
) -> None:
    mine, _ = new_key(owner, "operator", name="alices-key")
    theirs, _ = new_key(other, "operator", name="bobs-key")

    alice_page = login(client, owner).get("/api-keys/")
    admin_page = login(Client(), admin_user).get("/api-keys/")

    assertContains(alice_page, mine.prefix)
    assertNotContains(alice_page, theirs.prefix)
    assertNotContains(alice_page, "bobs-key")
    assertContains(admin_page, mine.prefix)
    assertContains(admin_page, theirs.prefix)


def test_revoked_key_is_refused_by_the_api(client: Client, owner: Any, agent: Agent) -> None:
    key, secret = new_key(owner, "operator")
    assert api_get(secret).status_code == 200
    login(client, owner)

    response = client.post(f"/api-keys/{key.prefix}/revoke", follow=True)

    assertRedirects(response, "/api-keys/")
    assertContains(response, f"Key {key.prefix} (ci-deploy) is revoked.")
    assertContains(response, '<span class="badge status-archived">revoked</span>')
    assertNotContains(response, f'action="/api-keys/{key.prefix}/revoke"')
    key.refresh_from_db()
    assert key.revoked
    assert key.revoked_at is not None
    refused = api_get(secret)
    assert refused.status_code == 401
    error = refused.json()["error"]
    assert error["code"] == "authentication_failed"
    assert set(error) == {"code", "message", "details", "timestamp", "requestId"}
    assert AuditEvent.objects.filter(action="api_key.revoked", target_id=key.prefix).exists()


def test_revoking_twice_says_it_is_already_revoked(client: Client, owner: Any) -> None:
    key, _ = new_key(owner, "operator")
    login(client, owner)
    client.post(f"/api-keys/{key.prefix}/revoke")

    response = client.post(f"/api-keys/{key.prefix}/revoke", follow=True)

    assertContains(response, '<li class="msg msg-error">This key is already revoked.</li>')
    assert AuditEvent.objects.filter(action="api_key.revoked").count() == 1


@pytest.mark.parametrize("who", ["outsider", "viewer", "other"])
def test_someone_elses_key_cannot_be_revoked(
    request: Any, client: Client, owner: Any, agent: Agent, who: str
) -> None:
    key, secret = new_key(owner, "operator")

    response = login(client, request.getfixturevalue(who)).post(f"/api-keys/{key.prefix}/revoke")

    assert response.status_code == 404
    key.refresh_from_db()
    assert not key.revoked
    assert api_get(secret).status_code == 200


def test_admin_may_revoke_anyones_key(client: Client, owner: Any, admin_user: Any) -> None:
    key, secret = new_key(owner, "operator")

    response = login(client, admin_user).post(f"/api-keys/{key.prefix}/revoke")

    assertRedirects(response, "/api-keys/", fetch_redirect_response=False)
    assert api_get(secret).status_code == 401


def test_revoke_refuses_get(client: Client, owner: Any) -> None:
    key, _ = new_key(owner, "operator")

    response = login(client, owner).get(f"/api-keys/{key.prefix}/revoke")

    assert response.status_code == 405
    key.refresh_from_db()
    assert not key.revoked


# --- login, logout ------------------------------------------------------------------------


def test_login_form_signs_in_and_lands_on_the_dashboard(client: Client, owner: Any) -> None:
    page = client.get("/login/")

    response = client.post("/login/", {"username": "alice", "password": PASSWORD}, follow=True)

    assert page.status_code == 200
    assertContains(page, '<input id="id_username" name="username"')
    assertNotContains(page, 'aria-label="Main"')  # no navigation before signing in
    assertRedirects(response, "/dashboard/")
    assertContains(response, "<span>alice</span>")
    assert AuditEvent.objects.filter(action="auth.login", actor_label="alice").count() == 1


def test_login_with_a_wrong_password_is_refused_and_audited(client: Client, owner: Any) -> None:
    response = client.post("/login/", {"username": "alice", "password": "guess"})

    assert response.status_code == 200
    assertContains(response, "Your username and password didn't match.")
    assertContains(response, 'value="alice"')
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="auth.login_failed", target_id="alice").exists()
    assertRedirects(client.get("/agents/"), "/login/?next=/agents/", fetch_redirect_response=False)


def test_inactive_user_cannot_log_in(client: Client, owner: Any) -> None:
    owner.is_active = False
    owner.save()

    response = client.post("/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_login_follows_next_but_only_on_this_site(client: Client, owner: Any) -> None:
    page = client.get("/login/?next=/audit/")
    inside = client.post("/login/", {"username": "alice", "password": PASSWORD, "next": "/audit/"})
    client.logout()
    outside = client.post(
        "/login/", {"username": "alice", "password": PASSWORD, "next": "https://evil.example/"}
    )

    assertContains(page, '<input type="hidden" name="next" value="/audit/">')
    assertRedirects(inside, "/audit/", fetch_redirect_response=False)
    assertRedirects(outside, "/", fetch_redirect_response=False)


def test_logout_is_a_post_and_ends_the_session(client: Client, owner: Any) -> None:
    login(client, owner)
    assert client.get("/logout/").status_code == 405
    assert client.get("/agents/").status_code == 200

    response = client.post("/logout/")

    assertRedirects(response, "/login/", fetch_redirect_response=False)
    assertRedirects(client.get("/agents/"), "/login/?next=/agents/", fetch_redirect_response=False)


# --- navigation ---------------------------------------------------------------------------


def nav_links(response: Any) -> list[tuple[str, str, bool]]:
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', html(response), re.S)
    assert nav is not None, "no main navigation"
    return [
        (href, label, bool(current))
        for href, current, label in re.findall(
            r'<a href="([^"]+)"( aria-current="page")?>([^<]+)</a>', nav.group(1)
        )
    ]


@pytest.mark.parametrize(
    ("path", "current"),
    [
        ("/dashboard/", "Dashboard"),
        ("/agents/", "Agents"),
        ("/agents/job-application-agent/", "Agents"),
        ("/executions/", "Executions"),
        ("/policies/", "Policies"),
        ("/policies/dry-run", "Policies"),
        ("/audit/", "Audit log"),
        ("/api-keys/", "API keys"),
    ],
)
def test_navigation_marks_the_current_section(
    client: Client, owner: Any, agent: Agent, path: str, current: str
) -> None:
    response = login(client, owner).get(path)

    assert nav_links(response) == [
        ("/dashboard/", "Dashboard", current == "Dashboard"),
        ("/agents/", "Agents", current == "Agents"),
        ("/executions/", "Executions", current == "Executions"),
        ("/policies/", "Policies", current == "Policies"),
        ("/audit/", "Audit log", current == "Audit log"),
        ("/api-keys/", "API keys", current == "API keys"),
        ("/admin/", "Admin", False),
        ("/api/docs/", "API", False),
    ]
    assertContains(response, '<form class="whoami" method="post" action="/logout/">')
    assertContains(response, "<span>alice</span>")


def test_navigation_shows_admin_only_to_staff(client: Client) -> None:
    plain = factories.user("pat")

    labels = [label for _, label, _ in nav_links(login(client, plain).get("/api-keys/"))]

    assert labels == [
        "Dashboard",
        "Agents",
        "Executions",
        "Policies",
        "Audit log",
        "API keys",
        "API",
    ]
