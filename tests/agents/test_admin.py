"""The registry in the Django admin: the same visibility, rules and services as the API.

Real admin views through the test client, with the owner / permitted other / outsider trio
(alice, bob, charlie), a viewer (vera) and an admin (root).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents import services
from agents.config import config_hash
from agents.models import Agent, AgentVersion, Tag
from controlplane.access import Actor, can
from controlplane.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db

NEW_CONFIG = {
    "runtime": "llm",
    "llm": {"provider": "simulated", "system_prompt": "Triage the inbox."},
    "capabilities": {"read": True, "write": False, "notify": False, "execute": False},
}


# --- helpers ------------------------------------------------------------------------------


def changelist_url() -> str:
    return reverse("admin:agents_agent_changelist")


def change_url(agent: Agent) -> str:
    return reverse("admin:agents_agent_change", args=[agent.pk])


def version_change_url(version: AgentVersion) -> str:
    return reverse("admin:agents_agentversion_change", args=[version.pk])


def logged_in(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def shown(client: Client, response: Any) -> list[tuple[str, str]]:
    """The messages the user sees on the page the response redirects to."""
    assert response.status_code == 302, response.content
    page = client.get(response["Location"])
    return [(message.level_tag, str(message)) for message in page.context["messages"]]


def listed(client: Client, url: str | None = None, **params: Any) -> list[str]:
    response = client.get(url or changelist_url(), params)
    assert response.status_code == 200, response.content
    return sorted(str(obj) for obj in response.context["cl"].result_list)


def form_data(response: Any) -> dict[str, Any]:
    """What a browser sends back for an admin form exactly as it was rendered, inline
    formsets (and their management forms) included."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms.extend([inline.formset.management_form, *inline.formset.forms])
    data: dict[str, Any] = {}
    for form in forms:
        for bound in form:
            value = bound.value()
            if value is False:
                continue  # an unchecked checkbox is not sent
            data[bound.html_name] = "" if value is None else value
    return data


def action(client: Client, name: str, *agents: Agent) -> Any:
    return client.post(
        changelist_url(), {"action": name, "_selected_action": [agent.pk for agent in agents]}
    )


def audit_actions(agent: Agent) -> list[str]:
    return list(
        AuditEvent.objects.filter(agent_id=agent.pk).order_by("id").values_list("action", flat=True)
    )


def second_agent(owner: Any, team: str | None = None) -> Agent:
    """email-summarizer (an llm agent tagged "productivity")."""
    return factories.agent(owner, team=team, payload=factories.LLM_AGENT)


def new_version(agent: Agent, by: Any, version: str) -> AgentVersion:
    return services.agent_version_create(
        actor=Actor(user=by), agent=agent, version=version, clone_from="1.2.0"
    )


# --- changelist: who sees what ------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("owner", ["job-application-agent"]),
        ("other", ["job-application-agent"]),
        ("viewer", ["job-application-agent"]),
        ("outsider", ["email-summarizer"]),
        ("admin_user", ["email-summarizer", "job-application-agent"]),
    ],
)
def test_changelist_shows_only_agents_the_user_may_see(
    request: Any, client: Client, agent: Agent, outsider: Any, who: str, expected: list[str]
) -> None:
    second_agent(outsider, team="team-b")

    assert listed(logged_in(client, request.getfixturevalue(who))) == expected


def test_changelist_filters_by_status_team_and_tag_and_searches(
    client: Client, agent: Agent, owner: Any, outsider: Any
) -> None:
    summarizer = second_agent(owner)
    factories.to_production(summarizer, owner)
    services.agent_transition(actor=Actor(user=owner), agent=summarizer, action="activate")
    # charlie's agent shares the tag and the status, but alice may not see it
    foreign = factories.agent(outsider, payload=factories.seed_payload(name="foreign-agent"))
    factories.to_production(foreign, outsider)
    services.agent_transition(actor=Actor(user=outsider), agent=foreign, action="activate")
    client = logged_in(client, owner)
    team_a = Group.objects.get(name="team-a")
    recruiting = Tag.objects.get(name="recruiting")
    productivity = Tag.objects.get(name="productivity")

    assert listed(client) == ["email-summarizer", "job-application-agent"]
    assert listed(client, status__exact="active") == ["email-summarizer"]
    assert listed(client, status__exact="draft") == ["job-application-agent"]
    assert listed(client, team__id__exact=team_a.pk) == ["job-application-agent"]
    assert listed(client, tags__id__exact=recruiting.pk) == ["job-application-agent"]
    assert listed(client, tags__id__exact=productivity.pk) == ["email-summarizer"]
    assert listed(client, q="summar") == ["email-summarizer"]
    assert listed(client, q="eng-team@company.com") == ["job-application-agent"]
    assert listed(client, q="cover letters") == []


def test_filters_offer_only_the_teams_and_tags_of_visible_agents(
    client: Client, agent: Agent, owner: Any, outsider: Any
) -> None:
    factories.agent(
        outsider,
        team="team-b",
        payload=factories.seed_payload(name="acquisition-agent", tags=["project-falcon"]),
    )

    response = logged_in(client, owner).get(changelist_url())

    choices = {
        spec.field_path: sorted(label for _, label in spec.lookup_choices)
        for spec in response.context["cl"].filter_specs
        if spec.field_path in ("team", "tags")
    }
    assert choices == {
        "team": ["team-a"],
        "tags": ["automation", "high-volume", "recruiting"],
    }
    assert b"project-falcon" not in response.content
    assert b"team-b" not in response.content


def test_changelist_queries_do_not_grow_with_the_number_of_agents(
    client: Client, agent: Agent, owner: Any
) -> None:
    factories.to_production(agent, owner)
    new_version(agent, owner, "1.3.0")
    services.agent_version_promote(actor=Actor(user=owner), agent=agent)
    client = logged_in(client, owner)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(changelist_url()).status_code == 200
        return len(captured)

    queries()  # the first page after signing in also reads the session
    one = queries()
    for name in ("agent-b", "agent-c", "agent-d"):
        more = factories.agent(owner, payload=factories.seed_payload(name=name))
        factories.to_production(more, owner)
        services.agent_version_create(
            actor=Actor(user=owner), agent=more, version="1.3.0", clone_from="1.2.0"
        )
        services.agent_version_promote(actor=Actor(user=owner), agent=more)

    assert queries() == one


# --- change page: refusals ----------------------------------------------------------------


def test_outsider_cannot_open_or_post_the_change_page(
    client: Client, agent: Agent, owner: Any, outsider: Any
) -> None:
    data = form_data(logged_in(client, owner).get(change_url(agent)))
    client = logged_in(client, outsider)

    page = client.get(change_url(agent))
    posted = client.post(change_url(agent), {**data, "description": "charlie was here"})
    history = client.get(reverse("admin:agents_agent_history", args=[agent.pk]))

    for response in (page, posted, history):
        assert response.status_code == 302
        assert response["Location"] == reverse("admin:index")
    assert b"job-application-agent" not in page.content
    agent.refresh_from_db()
    assert agent.description == "Automated job application submission system"
    assert "agent.updated" not in audit_actions(agent)


def test_viewer_sees_the_agent_read_only(client: Client, agent: Agent, viewer: Any) -> None:
    client = logged_in(client, viewer)

    page = client.get(change_url(agent))
    posted = client.post(
        change_url(agent), {"description": "vera was here", "owner_email": "v@x.io"}
    )

    assert page.status_code == 200
    assert b"job-application-agent" in page.content
    assert list(page.context["adminform"].form.fields) == []  # every field read-only
    assert posted.status_code == 403
    assert client.get(reverse("admin:agents_agent_add")).status_code == 403
    agent.refresh_from_db()
    assert agent.description == "Automated job application submission system"


# --- lifecycle actions --------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "other"])
def test_promote_twice_then_activate_through_admin_actions(
    request: Any, client: Client, agent: Agent, who: str
) -> None:
    user = request.getfixturevalue(who)
    client = logged_in(client, user)

    staged = shown(client, action(client, "action_promote", agent))
    produced = shown(client, action(client, "action_promote", agent))
    activated = shown(client, action(client, "action_activate", agent))

    assert staged == [("success", "job-application-agent: 1.2.0 is now staging")]
    assert produced == [("success", "job-application-agent: 1.2.0 is now production")]
    assert activated == [("success", "job-application-agent is now active")]
    agent.refresh_from_db()
    version = agent.versions.get()
    assert agent.status == Agent.Status.ACTIVE
    assert agent.production_version == version
    assert agent.staging_version is None
    assert version.stage == AgentVersion.Stage.PRODUCTION
    events = AuditEvent.objects.filter(agent_id=agent.pk).order_by("id")
    assert [event.action for event in events] == [
        "agent.created",
        "agent_version.created",
        "agent_version.staging",
        "agent.promoted",
        "agent_version.production",
        "agent.promoted",
        "agent.activated",
    ]
    by_admin = [event for event in events if event.id > events[1].id]
    assert {(event.actor_type, event.actor_label) for event in by_admin} == {
        ("user", user.username)
    }
    assert all(event.request_id for event in by_admin)
    assert events.get(action="agent.activated").after["status"] == "active"


def test_pause_deprecate_and_archive_through_admin_actions(
    client: Client, agent: Agent, owner: Any
) -> None:
    factories.to_production(agent, owner)
    services.agent_transition(actor=Actor(user=owner), agent=agent, action="activate")
    client = logged_in(client, owner)

    statuses = []
    for name in ("pause", "activate", "deprecate", "archive"):
        assert shown(client, action(client, f"action_{name}", agent)) == [
            ("success", f"job-application-agent is now {Agent.TRANSITIONS[name][1]}")
        ]
        agent.refresh_from_db()
        statuses.append(agent.status)

    assert statuses == ["paused", "active", "deprecated", "archived"]
    assert agent.archived_at is not None
    assert audit_actions(agent)[-4:] == [
        "agent.paused",
        "agent.activated",
        "agent.deprecated",
        "agent.archived",
    ]


def test_rollback_action_restores_the_previous_production_version(
    client: Client, agent: Agent, owner: Any
) -> None:
    factories.to_production(agent, owner)
    newer = new_version(agent, owner, "1.3.0")
    client = logged_in(client, owner)
    shown(client, action(client, "action_promote", agent))
    shown(client, action(client, "action_promote", agent))
    agent.refresh_from_db()
    assert agent.production_version == newer

    response = action(client, "action_rollback", agent)

    assert shown(client, response) == [("success", "job-application-agent: rolled back to 1.2.0")]
    agent.refresh_from_db()
    newer.refresh_from_db()
    assert agent.production_version.version == "1.2.0"
    assert agent.production_version.stage == AgentVersion.Stage.PRODUCTION
    assert newer.stage == AgentVersion.Stage.RETIRED
    assert audit_actions(agent)[-1] == "agent.rolled_back"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "action_pause",
            "job-application-agent: Cannot pause agent 'job-application-agent': it is draft.",
        ),
        (
            "action_deprecate",
            "job-application-agent: Cannot deprecate agent 'job-application-agent': it is draft.",
        ),
        (
            "action_activate",
            "job-application-agent: Agent 'job-application-agent' has no "
            "production version to run: promote one first.",
        ),
        (
            "action_rollback",
            "job-application-agent: Agent 'job-application-agent' has no "
            "previous production version to roll back to.",
        ),
    ],
)
def test_refused_action_shows_an_error_and_changes_nothing(
    client: Client, agent: Agent, owner: Any, name: str, message: str
) -> None:
    client = logged_in(client, owner)
    events_before = AuditEvent.objects.count()

    response = action(client, name, agent)

    assert response.status_code == 302
    assert shown(client, response) == [("error", message)]
    agent.refresh_from_db()
    assert agent.status == Agent.Status.DRAFT
    assert agent.production_version is None
    assert AuditEvent.objects.count() == events_before


def test_action_on_several_agents_reports_each_one(
    client: Client, agent: Agent, owner: Any
) -> None:
    summarizer = second_agent(owner)
    factories.to_production(summarizer, owner)

    response = action(logged_in(client, owner), "action_activate", agent, summarizer)

    assert sorted(shown(client, response)) == [
        (
            "error",
            "job-application-agent: Agent 'job-application-agent' has no production "
            "version to run: promote one first.",
        ),
        ("success", "email-summarizer is now active"),
    ]
    agent.refresh_from_db()
    summarizer.refresh_from_db()
    assert (agent.status, summarizer.status) == ("draft", "active")


def test_archive_action_needs_the_owner_right(
    client: Client, agent: Agent, other: Any, owner: Any
) -> None:
    refused = action(logged_in(client, other), "action_archive", agent)
    agent.refresh_from_db()
    assert agent.status == Agent.Status.DRAFT
    assert shown(client, refused) == [
        ("error", "job-application-agent: You do not have permission to perform this action.")
    ]

    done = action(logged_in(client, owner), "action_archive", agent)

    assert shown(client, done) == [("success", "job-application-agent is now archived")]
    agent.refresh_from_db()
    assert agent.status == Agent.Status.ARCHIVED


def test_actions_ignore_agents_the_user_may_not_see(
    client: Client, agent: Agent, outsider: Any
) -> None:
    client = logged_in(client, outsider)
    events_before = AuditEvent.objects.count()

    response = action(client, "action_promote", agent)

    assert response.status_code == 302
    assert shown(client, response) == []
    agent.refresh_from_db()
    assert agent.staging_version is None
    assert AuditEvent.objects.count() == events_before


def test_viewer_is_offered_no_actions_and_cannot_run_one(
    client: Client, agent: Agent, viewer: Any
) -> None:
    client = logged_in(client, viewer)

    page = client.get(changelist_url())
    response = action(client, "action_promote", agent)

    assert page.context["action_form"] is None
    assert response.status_code == 200  # no action form to submit to
    agent.refresh_from_db()
    assert agent.staging_version is None
    assert "agent.promoted" not in audit_actions(agent)


@pytest.mark.parametrize("who", ["owner", "admin_user"])
def test_delete_is_not_offered_archive_is(
    request: Any, client: Client, agent: Agent, who: str
) -> None:
    client = logged_in(client, request.getfixturevalue(who))
    delete_url = reverse("admin:agents_agent_delete", args=[agent.pk])

    offered = dict(client.get(changelist_url()).context["action_form"].fields["action"].choices)
    page = client.get(delete_url)
    posted = client.post(delete_url, {"post": "yes"})
    bulk = client.post(
        changelist_url(),
        {"action": "delete_selected", "_selected_action": [agent.pk], "post": "yes"},
    )

    assert "delete_selected" not in offered
    assert "action_archive" in offered
    assert page.status_code == posted.status_code == 403
    assert shown(client, bulk) == [("warning", "No action selected.")]
    assert Agent.objects.filter(pk=agent.pk, status=Agent.Status.DRAFT).exists()
    assert AgentVersion.objects.filter(agent=agent).count() == 1


# --- add form -----------------------------------------------------------------------------


def add_form_data(client: Client, **changes: Any) -> dict[str, Any]:
    data = form_data(client.get(reverse("admin:agents_agent_add")))
    data.update(
        {
            "name": "inbox-triage",
            "description": "Sorts the support inbox",
            "owner_email": "support@company.com",
            "team": Group.objects.get(name="team-a").pk,
            "tags": [Tag.objects.get(name="recruiting").pk],
            "version": "0.1.0",
            "config": json.dumps(NEW_CONFIG),
        }
    )
    data.update(changes)
    return data


def test_add_form_creates_the_agent_through_the_service(
    client: Client, agent: Agent, owner: Any, other: Any, outsider: Any
) -> None:
    client = logged_in(client, owner)

    response = client.post(reverse("admin:agents_agent_add"), add_form_data(client))

    assert response.status_code == 302, response.context and response.context["errors"]
    created = Agent.objects.get(name="inbox-triage")
    assert response["Location"] == changelist_url()
    assert created.status == Agent.Status.DRAFT
    assert created.description == "Sorts the support inbox"
    assert created.owner_email == "support@company.com"
    assert (created.owner, created.created_by) == (owner, owner)
    assert created.team.name == "team-a"
    assert [tag.name for tag in created.tags.all()] == ["recruiting"]
    version = created.versions.get()
    assert (version.version, version.stage) == ("0.1.0", AgentVersion.Stage.DRAFT)
    assert version.config["llm"]["model"] == "simulated-1"  # normalized, defaults filled in
    assert version.config["llm"]["system_prompt"] == "Triage the inbox."
    assert version.config_hash == config_hash(version.config)
    assert version.created_by == owner
    # the service's grants: the owner and the team, not the outsider
    assert can(Actor(user=owner), "agents.delete_agent", created)
    assert can(Actor(user=other), "agents.change_agent", created)
    assert not can(Actor(user=outsider), "agents.view_agent", created)
    assert audit_actions(created) == ["agent.created", "agent_version.created"]
    assert set(
        AuditEvent.objects.filter(agent_id=created.pk).values_list("actor_type", "actor_label")
    ) == {("user", "alice")}


@pytest.mark.parametrize(
    ("changes", "field", "error"),
    [
        (
            {"config": json.dumps({**NEW_CONFIG, "capabilities": {"read": "yes"}})},
            "config",
            "capabilities.read: Must be true or false.",
        ),
        (
            {"config": json.dumps({**NEW_CONFIG, "colour": "blue"})},
            "config",
            "colour:",
        ),
        (
            {"config": json.dumps({"runtime": "n8n"})},
            "config",
            "n8n_workflow_id: The n8n runtime needs the workflow id.",
        ),
        ({"config": '{"runtime": "llm",'}, "config", "Enter a valid JSON."),
        ({"config": "[1, 2]"}, "config", "The config is not valid."),
        ({"name": "Inbox Triage!"}, "name", "Use 1-100 lowercase letters"),
        ({"name": "job-application-agent"}, "name", "already exists"),
        ({"version": "1.0"}, "version", "Must be a semantic version"),
        ({"owner_email": "not-an-email"}, "owner_email", "valid email"),
    ],
    ids=[
        "config-bad-type",
        "config-unknown-key",
        "config-cross-field",
        "config-not-json",
        "config-not-object",
        "bad-name",
        "taken-name",
        "bad-version",
        "bad-email",
    ],
)
def test_add_form_with_invalid_input_shows_field_errors_and_creates_nothing(
    client: Client, agent: Agent, owner: Any, changes: dict[str, Any], field: str, error: str
) -> None:
    client = logged_in(client, owner)
    events_before = AuditEvent.objects.count()

    response = client.post(reverse("admin:agents_agent_add"), add_form_data(client, **changes))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    assert any(error in message for message in errors[field]), errors[field]
    assert not Agent.objects.filter(name="inbox-triage").exists()
    assert AgentVersion.objects.count() == 1
    assert AuditEvent.objects.count() == events_before


def test_add_refused_by_the_service_becomes_an_error_message(
    client: Client, agent: Agent, owner: Any, outsider: Any
) -> None:
    client = logged_in(client, owner)
    events_before = AuditEvent.objects.count()
    data = add_form_data(client, team=Group.objects.get(name="team-b").pk)

    response = client.post(reverse("admin:agents_agent_add"), data)

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:agents_agent_add")
    assert shown(client, response) == [
        ("error", "team: You can only share an agent with a group you belong to.")
    ]
    assert not Agent.objects.filter(name="inbox-triage").exists()
    assert AuditEvent.objects.count() == events_before


# --- change form --------------------------------------------------------------------------


def test_editing_description_team_and_tags_goes_through_the_service(
    client: Client, agent: Agent, owner: Any, other: Any
) -> None:
    client = logged_in(client, owner)
    data = form_data(client.get(change_url(agent)))
    data.update(
        description="Now with cover letters",
        team="",
        tags=[Tag.objects.get(name="automation").pk],
    )

    response = client.post(change_url(agent), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    agent.refresh_from_db()
    assert agent.description == "Now with cover letters"
    assert agent.team is None
    assert [tag.name for tag in agent.tags.all()] == ["automation"]
    event = AuditEvent.objects.filter(agent_id=agent.pk).latest("id")
    assert (event.action, event.actor_label) == ("agent.updated", "alice")
    assert event.before["team"] == "team-a"
    assert event.after == {
        **event.before,
        "description": "Now with cover letters",
        "team": None,
        "tags": ["automation"],
    }
    # the team's object permissions went with the team
    assert listed(logged_in(Client(), other)) == []


def test_saving_an_unchanged_form_writes_no_audit_event(
    client: Client, agent: Agent, owner: Any
) -> None:
    client = logged_in(client, owner)
    events_before = AuditEvent.objects.count()

    response = client.post(change_url(agent), form_data(client.get(change_url(agent))))

    assert response.status_code == 302
    assert AuditEvent.objects.count() == events_before


def test_change_refused_by_the_service_becomes_an_error_message(
    client: Client, agent: Agent, owner: Any, outsider: Any
) -> None:
    client = logged_in(client, owner)
    data = form_data(client.get(change_url(agent)))
    data.update(description="Shared with team b", team=Group.objects.get(name="team-b").pk)

    response = client.post(change_url(agent), data)

    assert response.status_code == 302
    assert response["Location"] == change_url(agent)
    assert shown(client, response) == [
        ("error", "team: You can only share an agent with a group you belong to.")
    ]
    agent.refresh_from_db()
    assert agent.team.name == "team-a"
    assert agent.description == "Automated job application submission system"  # rolled back
    assert "agent.updated" not in audit_actions(agent)
    assert client.get(change_url(agent)).status_code == 200


def test_change_of_an_archived_agent_becomes_an_error_message(
    client: Client, agent: Agent, owner: Any
) -> None:
    client = logged_in(client, owner)
    data = form_data(client.get(change_url(agent)))
    services.agent_transition(actor=Actor(user=owner), agent=agent, action="archive")

    response = client.post(change_url(agent), {**data, "description": "too late"})

    assert shown(client, response) == [("error", "Agent 'job-application-agent' is archived.")]
    agent.refresh_from_db()
    assert agent.description == "Automated job application submission system"


def test_version_inline_is_read_only(client: Client, agent: Agent, owner: Any) -> None:
    client = logged_in(client, owner)
    page = client.get(change_url(agent))
    [inline] = page.context["inline_admin_formsets"]
    version = agent.versions.get()
    data = form_data(page)
    data.update(
        {
            "versions-0-changelog": "rewritten",
            "versions-0-version": "9.9.9",
            "versions-0-config": "{}",
            "versions-0-DELETE": "on",
            "versions-TOTAL_FORMS": 2,
            "versions-1-version": "2.0.0",
            "versions-1-config": json.dumps(NEW_CONFIG),
            "versions-1-agent": agent.pk,
        }
    )

    response = client.post(change_url(agent), data)

    assert set(inline.formset.forms[0].fields) == {"id", "agent"}  # nothing editable
    assert not inline.formset.can_delete
    assert inline.formset.max_num == 0  # no new versions from here
    assert b"1.2.0" in page.content
    assert response.status_code == 302
    assert list(AgentVersion.objects.filter(agent=agent)) == [version]
    unchanged = AgentVersion.objects.get(pk=version.pk)
    assert (unchanged.version, unchanged.changelog, unchanged.config) == (
        version.version,
        version.changelog,
        version.config,
    )


# --- object permissions (django-guardian's page) ------------------------------------------


def permissions_url(agent: Agent, user: Any) -> str:
    return reverse("admin:agents_agent_permissions_manage_user", args=[agent.pk, user.pk])


@pytest.mark.parametrize("who", ["other", "viewer"])
def test_team_members_cannot_grant_themselves_the_owner_rights(
    request: Any, client: Client, agent: Agent, who: str
) -> None:
    user = request.getfixturevalue(who)
    client = logged_in(client, user)
    perms_before = set(agent.agentuserobjectpermission_set.values_list("user", "permission"))

    page = client.get(reverse("admin:agents_agent_permissions", args=[agent.pk]))
    posted = client.post(
        permissions_url(agent, user),
        {"permissions": ["view_agent", "change_agent", "delete_agent", "execute_agent"]},
    )
    group = client.post(
        reverse(
            "admin:agents_agent_permissions_manage_group",
            args=[agent.pk, Group.objects.get(name="team-a").pk],
        ),
        {"permissions": ["view_agent", "change_agent", "delete_agent", "execute_agent"]},
    )

    assert page.status_code == posted.status_code == group.status_code == 403
    assert not can(Actor(user=user), "agents.delete_agent", agent)
    assert (
        set(agent.agentuserobjectpermission_set.values_list("user", "permission")) == perms_before
    )


def test_outsider_cannot_open_the_object_permissions_page(
    client: Client, agent: Agent, outsider: Any
) -> None:
    client = logged_in(client, outsider)

    page = client.get(reverse("admin:agents_agent_permissions", args=[agent.pk]))
    posted = client.post(permissions_url(agent, outsider), {"permissions": ["view_agent"]})

    assert page.status_code == posted.status_code == 404
    assert not can(Actor(user=outsider), "agents.view_agent", agent)


def test_object_permissions_page_of_something_that_is_no_agent_is_404(
    client: Client, admin_user: Any
) -> None:
    response = logged_in(client, admin_user).get("/admin/agents/agent/not-an-id/permissions/")

    assert response.status_code == 404


@pytest.mark.parametrize("who", ["owner", "admin_user"])
def test_owner_and_admin_share_the_agent_on_the_object_permissions_page(
    request: Any, client: Client, agent: Agent, outsider: Any, who: str
) -> None:
    client = logged_in(client, request.getfixturevalue(who))

    page = client.get(reverse("admin:agents_agent_permissions", args=[agent.pk]))
    posted = client.post(permissions_url(agent, outsider), {"permissions": ["view_agent"]})

    assert page.status_code == 200
    assert posted.status_code == 302
    assert can(Actor(user=outsider), "agents.view_agent", agent)
    assert not can(Actor(user=outsider), "agents.change_agent", agent)
    assert listed(logged_in(Client(), outsider)) == ["job-application-agent"]
    event = AuditEvent.objects.get(action="agent.access_changed")
    assert (event.before, event.after) == (
        {"user": "charlie", "perms": []},
        {"user": "charlie", "perms": ["view_agent"]},
    )
    assert event.actor_label == request.getfixturevalue(who).username


# --- AgentVersionAdmin --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("owner", ["job-application-agent@1.2.0", "job-application-agent@1.3.0"]),
        ("other", ["job-application-agent@1.2.0", "job-application-agent@1.3.0"]),
        ("outsider", ["email-summarizer@1.0.0"]),
        (
            "admin_user",
            [
                "email-summarizer@1.0.0",
                "job-application-agent@1.2.0",
                "job-application-agent@1.3.0",
            ],
        ),
    ],
)
def test_version_changelist_lists_only_versions_of_agents_the_user_may_see(
    request: Any,
    client: Client,
    agent: Agent,
    owner: Any,
    outsider: Any,
    who: str,
    expected: list[str],
) -> None:
    new_version(agent, owner, "1.3.0")
    second_agent(outsider)
    client = logged_in(client, request.getfixturevalue(who))

    assert listed(client, reverse("admin:agents_agentversion_changelist")) == expected


def test_version_of_an_agent_the_user_may_not_see_is_refused(
    client: Client, agent: Agent, outsider: Any
) -> None:
    version = agent.versions.get()
    client = logged_in(client, outsider)

    page = client.get(version_change_url(version))
    posted = client.post(
        version_change_url(version), {"changelog": "x", "config": json.dumps(NEW_CONFIG)}
    )

    assert page.status_code == posted.status_code == 302
    assert page["Location"] == reverse("admin:index")
    assert AgentVersion.objects.get(pk=version.pk).changelog == version.changelog


@pytest.mark.parametrize("who", ["owner", "other"])
def test_draft_config_is_edited_and_validated_whole(
    request: Any, client: Client, agent: Agent, who: str
) -> None:
    user = request.getfixturevalue(who)
    version = agent.versions.get()
    client = logged_in(client, user)
    data = form_data(client.get(version_change_url(version)))
    config = json.loads(data["config"])
    assert config == version.config
    config["capabilities"]["execute"] = True

    response = client.post(
        version_change_url(version),
        {**data, "config": json.dumps(config), "changelog": "May execute"},
    )

    assert response.status_code == 302, response.context and response.context["errors"]
    version.refresh_from_db()
    assert version.config["capabilities"]["execute"] is True
    assert version.config_hash == config_hash(version.config)
    assert version.changelog == "May execute"
    assert version.stage == AgentVersion.Stage.DRAFT
    event = AuditEvent.objects.filter(agent_id=agent.pk).latest("id")
    assert (event.action, event.actor_label) == ("agent_version.updated", user.username)
    assert event.before["config"]["capabilities"]["execute"] is False
    assert event.after["config"]["capabilities"]["execute"] is True


def test_draft_config_replaced_whole_gets_the_defaults(
    client: Client, agent: Agent, owner: Any
) -> None:
    version = agent.versions.get()
    client = logged_in(client, owner)
    data = form_data(client.get(version_change_url(version)))

    response = client.post(version_change_url(version), {**data, "config": json.dumps(NEW_CONFIG)})

    assert response.status_code == 302
    version.refresh_from_db()
    assert version.config["runtime"] == "llm"
    assert version.config["n8n_workflow_id"] is None  # not merged: replaced
    assert version.config["data_scope"] == {"datasets": [], "apis": [], "services": []}
    assert version.config["trigger"]["type"] == "manual"


@pytest.mark.parametrize(
    ("config", "error"),
    [
        (
            {"runtime": "llm", "tools": [{"name": "send_email"}]},
            "send_email needs capabilities.notify to be true.",
        ),
        ({"runtime": "llm", "timeout_seconds": 0}, "timeout_seconds:"),
        ({"trigger": {"type": "cron", "schedule": "61 * * * *"}}, "trigger.schedule:"),
    ],
    ids=["tool-without-capability", "timeout", "cron"],
)
def test_invalid_draft_config_is_a_form_error(
    client: Client, agent: Agent, owner: Any, config: dict[str, Any], error: str
) -> None:
    version = agent.versions.get()
    client = logged_in(client, owner)
    events_before = AuditEvent.objects.count()
    data = form_data(client.get(version_change_url(version)))

    response = client.post(version_change_url(version), {**data, "config": json.dumps(config)})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["config"]
    assert any(error in message for message in errors), errors
    assert AgentVersion.objects.get(pk=version.pk).config == version.config
    assert AuditEvent.objects.count() == events_before


@pytest.mark.parametrize("who", ["owner", "admin_user"])
def test_version_that_left_draft_is_read_only(
    request: Any, client: Client, agent: Agent, owner: Any, who: str
) -> None:
    factories.to_production(agent, owner)
    version = agent.versions.get()
    client = logged_in(client, request.getfixturevalue(who))
    events_before = AuditEvent.objects.count()

    page = client.get(version_change_url(version))
    posted = client.post(
        version_change_url(version),
        {"changelog": "rewritten", "config": json.dumps(NEW_CONFIG)},
    )

    assert page.status_code == 200
    assert b'name="config"' not in page.content
    assert b'name="changelog"' not in page.content
    assert b"wf_abc123" in page.content  # the config is shown, read-only
    assert posted.status_code == 403
    unchanged = AgentVersion.objects.get(pk=version.pk)
    assert (unchanged.changelog, unchanged.config, unchanged.stage) == (
        version.changelog,
        version.config,
        AgentVersion.Stage.PRODUCTION,
    )
    assert AuditEvent.objects.count() == events_before


def test_draft_of_an_archived_agent_cannot_be_edited(
    client: Client, agent: Agent, owner: Any
) -> None:
    version = agent.versions.get()
    client = logged_in(client, owner)
    data = form_data(client.get(version_change_url(version)))
    services.agent_transition(actor=Actor(user=owner), agent=agent, action="archive")

    client.post(version_change_url(version), {**data, "changelog": "after the archive"})

    assert AgentVersion.objects.get(pk=version.pk).changelog == version.changelog


def test_add_version_creates_a_draft_through_the_service(
    client: Client, agent: Agent, owner: Any
) -> None:
    client = logged_in(client, owner)

    response = client.post(
        reverse("admin:agents_agentversion_add"),
        {
            "agent": agent.pk,
            "version": "2.0.0",
            "changelog": "LLM runtime",
            "config": json.dumps(NEW_CONFIG),
        },
    )

    assert response.status_code == 302, response.context and response.context["errors"]
    created = agent.versions.get(version="2.0.0")
    assert created.stage == AgentVersion.Stage.DRAFT
    assert created.changelog == "LLM runtime"
    assert created.created_by == owner
    assert created.config["llm"]["system_prompt"] == "Triage the inbox."
    assert audit_actions(agent)[-1] == "agent_version.created"


def test_add_version_offers_only_agents_the_user_may_change(
    client: Client, agent: Agent, outsider: Any, viewer: Any
) -> None:
    client = logged_in(client, outsider)

    response = client.post(
        reverse("admin:agents_agentversion_add"),
        {"agent": agent.pk, "version": "2.0.0", "config": json.dumps(NEW_CONFIG)},
    )

    assert response.status_code == 200
    assert "agent" in response.context["adminform"].form.errors
    assert not agent.versions.filter(version="2.0.0").exists()
    assert (
        logged_in(Client(), viewer).get(reverse("admin:agents_agentversion_add")).status_code == 403
    )
