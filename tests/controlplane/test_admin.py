"""API keys, the audit log and policies in the Django admin: real admin views, the same
services and visibility rules as the API."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agents.models import Agent
from controlplane.access import Actor
from controlplane.audit import audit_verify
from controlplane.models import APIKey, AuditEvent
from controlplane.selectors import api_key_roles_for
from policies.models import Policy
from tests import factories

pytestmark = pytest.mark.django_db

SECRET_MESSAGE = re.compile(r"^The API key for (?P<name>.+) is: (?P<secret>\S+) — store it now")


def logged_in(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def shown(client: Client, response: Any) -> list[tuple[str, str]]:
    """The messages the user sees on the page the response redirects to."""
    assert response.status_code == 302, response.content
    page = client.get(response["Location"])
    return [(message.level_tag, str(message)) for message in page.context["messages"]]


def listed(client: Client, url: str) -> list[Any]:
    response = client.get(url)
    assert response.status_code == 200, response.content
    return list(response.context["cl"].result_list)


def api_agents(secret: str) -> Any:
    return Client().get("/api/v1/agents", HTTP_AUTHORIZATION=f"Api-Key {secret}")


def key_of(owner: Any) -> APIKey:
    """A real key of the owner's role (its secret is not needed)."""
    factories.api_key(owner)
    return APIKey.objects.filter(owner=owner).latest("created")


# --- API keys -----------------------------------------------------------------------------

KEYS = "admin:controlplane_apikey_changelist"
ADD_KEY = "admin:controlplane_apikey_add"


def add_key(client: Client, **data: Any) -> Any:
    return client.post(
        reverse(ADD_KEY),
        {"expiry_date_0": "", "expiry_date_1": "", **data},
    )


def test_adding_a_key_shows_the_secret_once_and_stores_only_its_hash(
    client: Client, agent: Agent, owner: Any
) -> None:
    client = logged_in(client, owner)

    response = add_key(client, name="ci deploys", owner=owner.pk, role="operator")

    messages = shown(client, response)
    [secret] = [
        match["secret"]
        for _, text in messages
        if (match := SECRET_MESSAGE.match(text)) and match["name"] == "ci deploys"
    ]
    key = APIKey.objects.get(name="ci deploys")
    assert (key.owner, key.role, key.revoked) == (owner, "operator", False)
    assert secret.startswith(f"{key.prefix}.")
    stored = [str(value) for value in APIKey.objects.filter(pk=key.pk).values().get().values()]
    assert not any(secret in value for value in stored)  # only the hash is kept
    assert key.hashed_key != secret.partition(".")[2]
    assert APIKey.objects.is_valid(secret)
    # shown once: neither the list nor the key's page show it again
    assert secret.encode() not in client.get(reverse(KEYS)).content
    change_page = client.get(reverse("admin:controlplane_apikey_change", args=[key.pk]))
    assert change_page.status_code == 200
    assert secret.encode() not in change_page.content
    # and it works against the API, as its owner
    answer = api_agents(secret)
    assert answer.status_code == 200, answer.content
    assert [item["name"] for item in answer.json()["results"]] == ["job-application-agent"]
    event = AuditEvent.objects.get(action="api_key.created", target_id=key.prefix)
    assert (event.actor_label, event.after["role"]) == ("alice", "operator")
    assert secret not in json.dumps([event.before, event.after])


def test_admin_may_create_a_key_for_someone_else(
    client: Client, agent: Agent, admin_user: Any, other: Any
) -> None:
    client = logged_in(client, admin_user)

    response = add_key(client, name="for bob", owner=other.pk, role="operator")

    [secret] = [
        match["secret"]
        for _, text in shown(client, response)
        if (match := SECRET_MESSAGE.match(text))
    ]
    assert APIKey.objects.get(name="for bob").owner == other
    assert api_agents(secret).status_code == 200


def test_non_admin_is_offered_only_themselves_and_their_roles(
    client: Client, owner: Any, other: Any
) -> None:
    client = logged_in(client, owner)

    form = client.get(reverse(ADD_KEY)).context["adminform"].form
    for_bob = add_key(client, name="for bob", owner=other.pk, role="operator")
    admin_role = add_key(client, name="too strong", owner=owner.pk, role="admin")

    assert [user.username for user in form.fields["owner"].queryset] == ["alice"]
    assert form["owner"].value() == owner.pk
    offered = [value for value, _ in form.fields["role"].choices if value]
    assert offered == [role.value for role in api_key_roles_for(actor=Actor(user=owner))]
    assert "operator" in offered
    assert "admin" not in offered
    assert for_bob.status_code == admin_role.status_code == 200
    assert "owner" in for_bob.context["adminform"].form.errors
    assert "role" in admin_role.context["adminform"].form.errors
    assert not APIKey.objects.exists()


def test_key_refused_by_the_service_becomes_an_error_message(client: Client, owner: Any) -> None:
    client = logged_in(client, owner)
    yesterday = timezone.localtime() - timedelta(days=1)

    response = add_key(
        client,
        name="expired",
        owner=owner.pk,
        role="operator",
        expiry_date_0=yesterday.strftime("%Y-%m-%d"),
        expiry_date_1=yesterday.strftime("%H:%M:%S"),
    )

    assert response["Location"] == reverse(ADD_KEY)
    assert shown(client, response) == [("error", "expiry_date: The expiry must be in the future.")]
    assert not APIKey.objects.exists()
    assert not AuditEvent.objects.filter(action="api_key.created").exists()


@pytest.mark.parametrize(
    ("who", "expected"),
    [("owner", {"alice"}), ("other", {"bob"}), ("admin_user", {"alice", "bob", "root"})],
)
def test_non_admins_see_only_their_own_keys(
    request: Any,
    client: Client,
    owner: Any,
    other: Any,
    admin_user: Any,
    who: str,
    expected: set[str],
) -> None:
    alices, bobs, _ = key_of(owner), key_of(other), key_of(admin_user)
    client = logged_in(client, request.getfixturevalue(who))

    owners = {key.owner.username for key in listed(client, reverse(KEYS))}
    foreign = bobs if who == "owner" else alices
    page = client.get(reverse("admin:controlplane_apikey_change", args=[foreign.pk]))

    assert owners == expected
    assert page.status_code == (200 if who == "admin_user" else 302)


@pytest.mark.parametrize("who", ["owner", "viewer", "admin_user"])
def test_revoke_action_revokes_the_key_and_audits_it(
    request: Any, client: Client, owner: Any, who: str
) -> None:
    user = request.getfixturevalue(who)
    secret = factories.api_key(owner if who == "admin_user" else user)
    key = APIKey.objects.get_from_key(secret)
    assert api_agents(secret).status_code == 200
    client = logged_in(client, user)

    response = client.post(
        reverse(KEYS), {"action": "revoke_selected", "_selected_action": [key.pk]}
    )

    assert shown(client, response) == [("success", f"Revoked {key.prefix} (test).")]
    key.refresh_from_db()
    assert key.revoked
    assert key.revoked_at is not None
    refused = api_agents(secret)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_failed"
    event = AuditEvent.objects.get(action="api_key.revoked", target_id=key.prefix)
    assert event.actor_label == user.username
    assert (event.before["revoked"], event.after["revoked"]) == (False, True)

    again = client.post(reverse(KEYS), {"action": "revoke_selected", "_selected_action": [key.pk]})

    assert shown(client, again) == [("error", f"{key.prefix}: This key is already revoked.")]
    assert AuditEvent.objects.filter(action="api_key.revoked").count() == 1


def test_revoke_action_ignores_keys_of_others(client: Client, owner: Any, other: Any) -> None:
    secret = factories.api_key(other)
    key = APIKey.objects.get_from_key(secret)
    client = logged_in(client, owner)

    response = client.post(
        reverse(KEYS), {"action": "revoke_selected", "_selected_action": [key.pk]}
    )

    assert shown(client, response) == []
    key.refresh_from_db()
    assert not key.revoked
    assert api_agents(secret).status_code == 200


@pytest.mark.parametrize("who", ["owner", "admin_user"])
def test_keys_cannot_be_deleted(request: Any, client: Client, owner: Any, who: str) -> None:
    key = key_of(owner)
    client = logged_in(client, request.getfixturevalue(who))
    delete_url = reverse("admin:controlplane_apikey_delete", args=[key.pk])

    offered = dict(client.get(reverse(KEYS)).context["action_form"].fields["action"].choices)
    page = client.get(delete_url)
    posted = client.post(delete_url, {"post": "yes"})
    client.post(
        reverse(KEYS), {"action": "delete_selected", "_selected_action": [key.pk], "post": "yes"}
    )

    assert "delete_selected" not in offered
    assert "revoke_selected" in offered
    assert page.status_code == posted.status_code == 403
    assert APIKey.objects.filter(pk=key.pk, revoked=False).exists()


def test_a_saved_key_cannot_be_changed(client: Client, owner: Any) -> None:
    key = key_of(owner)
    client = logged_in(client, owner)
    url = reverse("admin:controlplane_apikey_change", args=[key.pk])

    page = client.get(url)
    client.post(url, {"name": "renamed", "role": "admin", "revoked": "on", "owner": owner.pk})

    assert list(page.context["adminform"].form.fields) == []
    unchanged = APIKey.objects.get(pk=key.pk)
    assert (unchanged.name, unchanged.role, unchanged.revoked) == ("test", "operator", False)


# --- audit log ----------------------------------------------------------------------------

EVENTS = "admin:controlplane_auditevent_changelist"


@pytest.mark.parametrize(
    ("who", "agents"),
    [
        ("owner", {"job-application-agent"}),
        ("other", {"job-application-agent"}),
        ("viewer", {"job-application-agent"}),
        ("outsider", {"email-summarizer"}),
        ("admin_user", {"job-application-agent", "email-summarizer"}),
    ],
)
def test_audit_log_shows_only_events_the_user_may_see(
    request: Any, client: Client, agent: Agent, outsider: Any, who: str, agents: set[str]
) -> None:
    factories.agent(outsider, payload=factories.LLM_AGENT)
    user = request.getfixturevalue(who)
    client = logged_in(client, user)

    events = listed(client, reverse(EVENTS))

    assert {event.target_repr for event in events if event.target_type == "agent"} == agents
    assert {event.actor_label for event in events if event.action == "auth.login"} == {
        user.username
    }


def test_event_the_user_may_not_see_cannot_be_opened(
    client: Client, agent: Agent, outsider: Any
) -> None:
    event = AuditEvent.objects.get(action="agent.created", agent_id=agent.pk)

    page = logged_in(client, outsider).get(
        reverse("admin:controlplane_auditevent_change", args=[event.pk])
    )

    assert page.status_code == 302
    assert page["Location"] == reverse("admin:index")
    assert b"job-application-agent" not in page.content


@pytest.mark.parametrize("who", ["owner", "admin_user"])
def test_audit_log_is_read_only(request: Any, client: Client, agent: Agent, who: str) -> None:
    event = AuditEvent.objects.get(action="agent.created", agent_id=agent.pk)
    client = logged_in(client, request.getfixturevalue(who))
    change_url = reverse("admin:controlplane_auditevent_change", args=[event.pk])

    page = client.get(change_url)
    changed = client.post(
        change_url,
        {"action": "agent.deleted", "actor_label": "nobody", "target_repr": "forged"},
    )
    add = client.get(reverse("admin:controlplane_auditevent_add"))
    delete = client.post(
        reverse("admin:controlplane_auditevent_delete", args=[event.pk]), {"post": "yes"}
    )
    bulk = client.post(
        reverse(EVENTS),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )

    assert page.status_code == 200
    assert list(page.context["adminform"].form.fields) == []
    assert changed.status_code == add.status_code == delete.status_code == 403
    assert bulk.status_code == 200  # no actions at all: the list is shown again
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.action, stored.actor_label, stored.target_repr, stored.hash) == (
        "agent.created",
        "alice",
        "job-application-agent",
        event.hash,
    )
    assert audit_verify().ok


def test_audit_log_offers_no_actions(client: Client, admin_user: Any) -> None:
    response = logged_in(client, admin_user).get(reverse(EVENTS))

    assert response.context["action_form"] is None


# --- policies -----------------------------------------------------------------------------

POLICIES = "admin:policies_policy_changelist"
RATE_LIMIT = {"max_executions": 10, "window_minutes": 60, "action_on_violation": "reject"}


def policy_form(**changes: Any) -> dict[str, Any]:
    return {
        "policy_name": "recruiting-rate-limit",
        "policy_type": "rate_limit",
        "applies_to": "tag",
        "target_agent": "",
        "target_tags": "recruiting",
        "rules": json.dumps(RATE_LIMIT),
        "enabled": "on",
        "priority": 10,
        **changes,
    }


def a_policy(by: Any) -> Policy:
    """A rate limit for all agents (which takes an admin)."""
    return factories.policy(by, "global-rate-limit", "rate_limit", RATE_LIMIT)


@pytest.fixture
def second_admin(db: Any) -> Any:
    return factories.user("ada", role="admin")


def policy_events(policy_id: Any) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(target_type="policy", target_id=str(policy_id)).order_by("id")
    )


def test_creating_a_policy_writes_policy_created(
    client: Client, agent: Agent, admin_user: Any, other: Any
) -> None:
    client = logged_in(client, admin_user)

    response = client.post(reverse("admin:policies_policy_add"), policy_form(created_by=other.pk))

    assert response.status_code == 302, response.context and response.context["errors"]
    policy = Policy.objects.get(policy_name="recruiting-rate-limit")
    assert policy.created_by == admin_user  # whatever the form was sent
    assert [tag.name for tag in policy.target_tags.all()] == ["recruiting"]
    assert (policy.rules, policy.priority, policy.enabled) == (RATE_LIMIT, 10, True)
    [event] = policy_events(policy.pk)
    assert (event.action, event.actor_label, event.before) == ("policy.created", "root", None)
    assert event.after["target_tags"] == ["recruiting"]
    assert event.after["rules"] == RATE_LIMIT


def test_changing_a_policy_writes_policy_updated_with_before_and_after(
    client: Client, agent: Agent, admin_user: Any, second_admin: Any
) -> None:
    policy = a_policy(admin_user)
    client = logged_in(client, second_admin)

    response = client.post(
        reverse("admin:policies_policy_change", args=[policy.pk]),
        policy_form(policy_name="global-rate-limit", enabled="", priority=5),
    )

    assert response.status_code == 302, response.context and response.context["errors"]
    policy.refresh_from_db()
    assert (policy.enabled, policy.priority, policy.created_by) == (False, 5, admin_user)
    event = policy_events(policy.pk)[-1]
    assert (event.action, event.actor_label) == ("policy.updated", "ada")
    assert (event.before["enabled"], event.after["enabled"]) == (True, False)
    assert (event.before["target_tags"], event.after["target_tags"]) == ([], ["recruiting"])
    assert (event.before["applies_to"], event.after["applies_to"]) == ("all", "tag")


@pytest.mark.parametrize("how", ["delete-page", "bulk-action"])
def test_deleting_a_policy_writes_policy_deleted(
    client: Client, admin_user: Any, second_admin: Any, how: str
) -> None:
    policy = a_policy(admin_user)
    client = logged_in(client, second_admin)

    if how == "delete-page":
        response = client.post(
            reverse("admin:policies_policy_delete", args=[policy.pk]), {"post": "yes"}
        )
    else:
        response = client.post(
            reverse(POLICIES),
            {"action": "delete_selected", "_selected_action": [policy.pk], "post": "yes"},
        )

    assert response.status_code == 302
    assert not Policy.objects.filter(pk=policy.pk).exists()
    event = policy_events(policy.pk)[-1]
    assert (event.action, event.actor_label) == ("policy.deleted", "ada")
    assert event.before["policy_name"] == "global-rate-limit"
    assert event.after is None


def test_viewer_cannot_change_policies(
    client: Client, agent: Agent, admin_user: Any, viewer: Any
) -> None:
    policy = a_policy(admin_user)
    client = logged_in(client, viewer)
    events_before = AuditEvent.objects.count()
    change_url = reverse("admin:policies_policy_change", args=[policy.pk])

    listing = listed(client, reverse(POLICIES))
    page = client.get(change_url)
    changed = client.post(change_url, policy_form(policy_name="global-rate-limit", enabled=""))
    added = client.post(reverse("admin:policies_policy_add"), policy_form())
    deleted = client.post(
        reverse("admin:policies_policy_delete", args=[policy.pk]), {"post": "yes"}
    )

    assert listing == [policy]
    assert page.status_code == 200
    assert list(page.context["adminform"].form.fields) == []
    assert changed.status_code == added.status_code == deleted.status_code == 403
    policy.refresh_from_db()
    assert policy.enabled
    assert Policy.objects.count() == 1
    assert AuditEvent.objects.count() == events_before


def test_target_agent_autocomplete_offers_only_visible_agents(
    client: Client, agent: Agent, outsider: Any
) -> None:
    factories.agent(outsider, payload=factories.LLM_AGENT)

    response = logged_in(client, outsider).get(
        reverse("admin:autocomplete"),
        {"app_label": "policies", "model_name": "policy", "field_name": "target_agent"},
    )

    assert response.status_code == 200
    assert [item["text"] for item in response.json()["results"]] == ["email-summarizer"]
