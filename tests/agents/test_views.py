"""The agents pages: list, detail, the lifecycle buttons, diff and the version forms.

Every page is opened by the trio (alice owns the agent, bob is permitted through team-a,
charlie is an outsider) and by vera, a viewer of team-a who sees pages but may change
nothing. HTMX answers are asked for with ``HX-Request: true``, as htmx itself does.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from pytest_django.asserts import (
    assertContains,
    assertNotContains,
    assertRedirects,
    assertTemplateNotUsed,
    assertTemplateUsed,
)

from agents import services as agent_services
from agents.models import Agent, AgentVersion
from controlplane.access import Actor
from controlplane.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
NAME = "job-application-agent"
DETAIL = f"/agents/{NAME}/"


def action_url(action: str, name: str = NAME) -> str:
    return f"/agents/{name}/actions/{action}"


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def html(response: Any) -> str:
    return response.content.decode()


def listed(response: Any) -> list[str]:
    """The agent names in the list table, in order."""
    return re.findall(r'<td><a href="/agents/([^/"]+)/">', html(response))


def stages(response: Any) -> dict[str, str]:
    """{version: stage badge} from the versions table."""
    return dict(
        re.findall(
            r'<tr data-version="([^"]+)">.*?<span class="badge stage-([a-z]+)">',
            html(response),
            re.S,
        )
    )


def buttons(response: Any) -> list[str]:
    """The data-action of every action button on the page."""
    return re.findall(r'data-action="([a-z]+)"', html(response))


def agent_state(agent: Agent) -> tuple[str, str | None, str | None, dict[str, str]]:
    """Everything a lifecycle action could change, read fresh from the database."""
    agent.refresh_from_db()
    return (
        agent.status,
        agent.production_version.version if agent.production_version else None,
        agent.staging_version.version if agent.staging_version else None,
        dict(agent.versions.values_list("version", "stage")),
    )


def new_version(agent: Agent, by: Any, version: str = "1.3.0", **change: Any) -> AgentVersion:
    return agent_services.agent_version_create(
        actor=Actor(user=by), agent=agent, version=version, clone_from="1.2.0", change=change
    )


# --- anonymous ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/agents/"),
        ("get", DETAIL),
        ("get", f"/agents/{NAME}/diff?from=1.2.0&to=1.2.0"),
        ("get", f"/agents/{NAME}/versions/new"),
        ("get", f"/agents/{NAME}/versions/1.2.0/edit"),
        ("post", f"/agents/{NAME}/versions/1.2.0/edit"),
        ("post", action_url("promote")),
    ],
)
def test_anonymous_is_redirected_to_login(
    client: Client, agent: Agent, method: str, path: str
) -> None:
    response = getattr(client, method)(path)

    assert response.status_code == 302
    assert response["Location"] == "/login/?" + urlencode({"next": path}, safe="/")
    assert agent_state(agent) == ("draft", None, None, {"1.2.0": "draft"})


def test_home_redirects_to_the_dashboard(client: Client, owner: Any) -> None:
    response = login(client, owner).get("/")

    assertRedirects(response, "/dashboard/")


# --- list ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "visible"),
    [("owner", True), ("other", True), ("outsider", False), ("viewer", True), ("admin_user", True)],
)
def test_list_shows_only_agents_the_user_may_see(
    request: Any, client: Client, agent: Agent, who: str, visible: bool
) -> None:
    response = login(client, request.getfixturevalue(who)).get("/agents/")

    assert response.status_code == 200
    assertTemplateUsed(response, "agents/list.html")
    assert listed(response) == ([NAME] if visible else [])
    if not visible:
        assertContains(response, "No agents match.")


@pytest.fixture
def three_agents(owner: Any, agent: Agent) -> None:
    """job-application-agent (recruiting), email-summarizer (productivity), and old-agent
    (legacy), archived."""
    factories.agent(owner, team="team-a", payload=factories.LLM_AGENT)
    old = factories.agent(owner, payload=factories.seed_payload(name="old-agent", tags=["legacy"]))
    agent_services.agent_transition(actor=Actor(user=owner), agent=old, action="archive")


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("", ["email-summarizer", NAME]),
        ("?q=summar", ["email-summarizer"]),
        ("?q=ENG-TEAM", [NAME]),
        ("?tag=recruiting", [NAME]),
        ("?tag=productivity&q=summar", ["email-summarizer"]),
        ("?tag=nothing", []),
        ("?status=archived", ["old-agent"]),
        ("?status=draft", ["email-summarizer", NAME]),
        ("?status=draft,archived", ["email-summarizer", NAME, "old-agent"]),
        ("?status=draft&status=archived", ["email-summarizer", NAME, "old-agent"]),
        ("?status=active", []),
    ],
)
def test_list_filters_through_agent_filter(
    client: Client, owner: Any, three_agents: None, query: str, names: list[str]
) -> None:
    response = login(client, owner).get(f"/agents/{query}")

    assert response.status_code == 200
    assert listed(response) == names


def test_list_keeps_filter_values_in_the_form(
    client: Client, owner: Any, three_agents: None
) -> None:
    response = login(client, owner).get("/agents/?q=summar&tag=productivity&status=draft")

    assertContains(response, 'name="q" value="summar"')
    assertContains(response, 'name="tag" value="productivity"')
    assertContains(response, '<option value="draft" selected>')
    assertNotContains(response, '<option value="active" selected>')


def test_list_invalid_status_shows_the_error_and_no_agents(
    client: Client, owner: Any, agent: Agent
) -> None:
    response = login(client, owner).get("/agents/?status=sleeping")

    assert response.status_code == 200
    assert listed(response) == []
    assertContains(response, "status: Select a valid choice.")


def test_list_empty_state_with_filters_offers_to_clear_them(
    client: Client, owner: Any, agent: Agent
) -> None:
    response = login(client, owner).get("/agents/?q=no-such-agent")

    assertContains(response, "No agents match.")
    assertContains(response, '<a href="/agents/">Clear the filters</a>')


def test_list_empty_state_without_agents_says_how_to_register(client: Client, owner: Any) -> None:
    response = login(client, owner).get("/agents/")

    assertContains(response, "No agents match.")
    assertContains(response, "POST /api/v1/agents")
    assertNotContains(response, "Clear the filters")


def test_list_tells_a_user_without_a_role_why_it_is_empty(client: Client, agent: Agent) -> None:
    response = login(client, factories.user("nobody")).get("/agents/")

    assert listed(response) == []
    assertContains(response, "Your role does not let you see agents.")


def test_list_htmx_request_returns_only_the_table_partial(
    client: Client, owner: Any, three_agents: None
) -> None:
    response = login(client, owner).get("/agents/?q=summar", headers=HTMX)

    assert response.status_code == 200
    assertTemplateUsed(response, "agents/_list_table.html")
    assertTemplateNotUsed(response, "agents/list.html")
    assertTemplateNotUsed(response, "base.html")
    assert listed(response) == ["email-summarizer"]
    assertNotContains(response, "<html")
    assertNotContains(response, 'class="filters"')


def test_list_paginates_and_keeps_the_filters_in_page_links(client: Client, owner: Any) -> None:
    for index in range(52):
        factories.agent(owner, payload=factories.seed_payload(name=f"agent-{index:02d}"))
    login(client, owner)

    first = client.get("/agents/?q=agent-")
    second = client.get("/agents/?q=agent-&page=2")
    beyond = client.get("/agents/?q=agent-&page=99")

    assert listed(first) == [f"agent-{index:02d}" for index in range(50)]
    assertContains(first, "Page 1 of 2 (52)")
    assertContains(first, 'href="?q=agent-&amp;page=2" rel="next"')
    assert listed(second) == ["agent-50", "agent-51"]
    assertContains(second, 'href="?q=agent-&amp;page=1" rel="prev"')
    assert listed(beyond) == listed(second)  # past the end: the last page


def test_list_shows_status_versions_and_tags(client: Client, owner: Any, agent: Agent) -> None:
    factories.to_production(agent, owner)

    response = login(client, owner).get("/agents/")

    assertContains(response, '<span class="badge status-draft">draft</span>')
    assertContains(response, "<td>1.2.0</td>", count=1)
    assertContains(response, '<a class="tag" href="?tag=recruiting">recruiting</a>')
    assertContains(response, "team team-a")


# --- detail -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status", "expected_buttons"),
    [
        ("owner", 200, ["activate", "archive", "promote"]),
        ("other", 200, ["activate", "promote"]),  # the team may change it, not delete it
        ("outsider", 404, []),
        ("viewer", 200, []),
        ("admin_user", 200, ["activate", "archive", "promote"]),
    ],
)
def test_detail_shows_buttons_only_to_who_may_use_them(
    request: Any,
    client: Client,
    agent: Agent,
    who: str,
    status: int,
    expected_buttons: list[str],
) -> None:
    response = login(client, request.getfixturevalue(who)).get(DETAIL)

    assert response.status_code == status
    if status == 404:
        assertNotContains(response, NAME, status_code=404)
        return
    assertTemplateUsed(response, "agents/detail.html")
    assert stages(response) == {"1.2.0": "draft"}
    assert sorted(buttons(response)) == expected_buttons
    if expected_buttons:
        assertContains(response, "Promote to staging")
        assertContains(response, f'href="/agents/{NAME}/versions/new"')
    else:
        assertNotContains(response, "Promote to")
        assertNotContains(response, "New draft version")
        assertNotContains(response, 'method="post" action="/agents/')


def test_detail_lists_versions_with_their_stage_badges(
    client: Client, owner: Any, agent: Agent
) -> None:
    factories.to_production(agent, owner)
    new_version(agent, owner, "1.3.0", capabilities={"execute": True})
    new_version(agent, owner, "1.4.0")
    agent_services.agent_version_promote(actor=Actor(user=owner), agent=agent, version="1.3.0")

    response = login(client, owner).get(DETAIL)

    assert stages(response) == {
        "1.4.0": "draft",
        "1.3.0": "staging",
        "1.2.0": "production",
    }
    body = html(response)
    rows = {
        version: row
        for version, row in re.findall(r'<tr data-version="([^"]+)">(.*?)</tr>', body, re.S)
    }
    assert "Promote to staging" in rows["1.4.0"]
    assert "Edit</a>" in rows["1.4.0"]
    assert "Promote to production" in rows["1.3.0"]
    assert "Promote" not in rows["1.2.0"]
    assert "Edit</a>" not in rows["1.2.0"]
    # the production config is shown, and the compare form preselects the newest two
    assertContains(response, "Production config")
    assertContains(response, "&quot;wf_abc123&quot;")
    assertContains(response, '<option value="1.3.0" selected>1.3.0 (staging)</option>')
    assertContains(response, '<option value="1.4.0" selected>1.4.0 (draft)</option>')


def test_detail_with_one_version_has_nothing_to_compare(
    client: Client, owner: Any, agent: Agent
) -> None:
    response = login(client, owner).get(DETAIL)

    assertContains(response, "One version so far: nothing to compare.")
    assertContains(response, "No production version yet")


def test_detail_offers_rollback_only_when_there_is_a_previous_production(
    client: Client, owner: Any, agent: Agent
) -> None:
    factories.to_production(agent, owner)
    login(client, owner)
    assert "rollback" not in buttons(client.get(DETAIL))

    new_version(agent, owner)
    factories.to_production(agent, owner, "1.3.0")
    response = client.get(DETAIL)

    assert "rollback" in buttons(response)
    assertContains(response, "Roll back to 1.2.0")


def test_detail_htmx_request_returns_the_panel_partial(
    client: Client, owner: Any, agent: Agent
) -> None:
    response = login(client, owner).get(DETAIL, headers=HTMX)

    assertTemplateUsed(response, "agents/_panel.html")
    assertTemplateNotUsed(response, "base.html")
    assert html(response).lstrip().startswith('<section id="agent-panel"')


@pytest.mark.parametrize(
    ("path", "page", "partial"),
    [
        ("/agents/", "agents/list.html", "agents/_list_table.html"),
        (DETAIL, "agents/detail.html", "agents/_panel.html"),
        (f"/agents/{NAME}/diff?from=1.2.0&to=1.2.0", "agents/diff.html", "agents/_diff.html"),
    ],
)
def test_pages_and_partials_vary_on_hx_request(
    client: Client, owner: Any, agent: Agent, path: str, page: str, partial: str
) -> None:
    """Same URL, two answers: caches must key on HX-Request, and htmx's history restore
    (after a cache miss it asks with HX-Request as well) must get the whole page."""
    login(client, owner)

    full = client.get(path)
    swap = client.get(path, headers=HTMX)
    restore = client.get(path, headers={**HTMX, "HX-History-Restore-Request": "true"})

    for response in (full, swap, restore):
        assert response.status_code == 200
        assert "HX-Request" in response["Vary"]
    assertTemplateUsed(full, page)
    assertTemplateUsed(swap, partial)
    assertTemplateNotUsed(swap, page)
    assertTemplateUsed(restore, page)
    assertContains(restore, "<html")


def test_detail_by_agent_id_works_like_by_name(client: Client, owner: Any, agent: Agent) -> None:
    response = login(client, owner).get(f"/agents/{agent.pk}/")

    assert response.status_code == 200
    assert stages(response) == {"1.2.0": "draft"}


def test_archived_agent_detail_shows_no_buttons(client: Client, owner: Any, agent: Agent) -> None:
    agent_services.agent_transition(actor=Actor(user=owner), agent=agent, action="archive")

    response = login(client, owner).get(DETAIL)

    assert response.status_code == 200
    assertContains(response, '<span class="badge status-archived">archived</span>')
    assert buttons(response) == []


# --- actions ------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "status"), [("owner", 200), ("other", 200), ("outsider", 404)])
def test_promote_with_htmx_returns_the_panel_with_the_new_stage(
    request: Any, client: Client, agent: Agent, who: str, status: int
) -> None:
    response = login(client, request.getfixturevalue(who)).post(
        action_url("promote"), {"version": "1.2.0"}, headers=HTMX
    )

    assert response.status_code == status
    if status == 404:
        assert agent_state(agent) == ("draft", None, None, {"1.2.0": "draft"})
        return
    assertTemplateUsed(response, "agents/_panel.html")
    assertTemplateNotUsed(response, "base.html")
    assert stages(response) == {"1.2.0": "staging"}
    assertContains(response, "Version 1.2.0 is now staging.")
    assertContains(response, "Promote to production")
    assert agent_state(agent) == ("draft", None, "1.2.0", {"1.2.0": "staging"})


@pytest.mark.parametrize(("who", "status"), [("owner", 302), ("other", 302), ("outsider", 404)])
def test_promote_without_htmx_redirects_with_a_message(
    request: Any, client: Client, agent: Agent, who: str, status: int
) -> None:
    login(client, request.getfixturevalue(who))

    response = client.post(action_url("promote"), {"version": "1.2.0"})

    assert response.status_code == status
    if status == 404:
        assert agent_state(agent)[2] is None
        return
    assertRedirects(response, DETAIL, fetch_redirect_response=False)
    page = client.get(DETAIL)
    assertContains(page, '<li class="msg msg-success">Version 1.2.0 is now staging.</li>')
    assert stages(page) == {"1.2.0": "staging"}


def test_the_whole_lifecycle_through_the_buttons(client: Client, owner: Any, agent: Agent) -> None:
    login(client, owner)

    def press(action: str, **data: str) -> Any:
        response = client.post(action_url(action), data, headers=HTMX)
        assert response.status_code == 200, html(response)
        return response

    press("promote", version="1.2.0")
    produced = press("promote", version="1.2.0")
    assert stages(produced) == {"1.2.0": "production"}
    assertContains(produced, "Version 1.2.0 is now production.")

    activated = press("activate")
    assertContains(activated, '<span class="badge status-active">active</span>')
    assert sorted(buttons(activated)) == ["archive", "deprecate", "pause"]

    paused = press("pause")
    assertContains(paused, "Agent job-application-agent is now paused.")
    assert sorted(buttons(paused)) == ["activate", "archive", "deprecate"]

    press("activate")
    new_version(agent, owner)
    press("promote", version="1.3.0")
    press("promote", version="1.3.0")
    rolled = press("rollback")
    assertContains(rolled, "Rolled back: version 1.2.0 is in production again.")
    assert stages(rolled) == {"1.3.0": "retired", "1.2.0": "production"}

    deprecated = press("deprecate")
    assertContains(deprecated, '<span class="badge status-deprecated">deprecated</span>')
    assert agent_state(agent) == (
        "deprecated",
        "1.2.0",
        None,
        {"1.2.0": "production", "1.3.0": "retired"},
    )
    assert AuditEvent.objects.filter(action="agent.rolled_back", agent_id=agent.pk).count() == 1


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("pause", "Cannot pause agent &#x27;job-application-agent&#x27;: it is draft."),
        ("deprecate", "Cannot deprecate agent &#x27;job-application-agent&#x27;: it is draft."),
        ("activate", "has no production version to run: promote one first."),
        ("rollback", "has no previous production version to roll back to."),
    ],
)
def test_refused_action_with_htmx_is_409_with_the_error_in_the_panel(
    client: Client, owner: Any, agent: Agent, action: str, message: str
) -> None:
    before = agent_state(agent)

    response = login(client, owner).post(action_url(action), headers=HTMX)

    assert response.status_code == 409
    assertTemplateUsed(response, "agents/_panel.html")
    assertContains(response, '<p class="msg msg-error" role="alert">', status_code=409)
    assertContains(response, message, status_code=409)
    assertNotContains(response, "msg-success", status_code=409)
    assert agent_state(agent) == before


def test_refused_promote_of_a_retired_version_is_409(
    client: Client, owner: Any, agent: Agent
) -> None:
    factories.to_production(agent, owner)
    new_version(agent, owner)
    factories.to_production(agent, owner, "1.3.0")
    before = agent_state(agent)

    response = login(client, owner).post(action_url("promote"), {"version": "1.2.0"}, headers=HTMX)

    assertContains(response, "use rollback to go back to it", status_code=409)
    assert agent_state(agent) == before


def test_promote_unknown_version_is_404_in_the_panel(
    client: Client, owner: Any, agent: Agent
) -> None:
    response = login(client, owner).post(action_url("promote"), {"version": "7.7.7"}, headers=HTMX)

    assertContains(response, "has no version 7.7.7", status_code=404)
    assertTemplateUsed(response, "agents/_panel.html")


def test_refused_action_without_htmx_redirects_with_the_error(
    client: Client, owner: Any, agent: Agent
) -> None:
    login(client, owner)

    response = client.post(action_url("pause"), follow=True)

    assertRedirects(response, DETAIL)
    assertContains(response, '<li class="msg msg-error">Cannot pause agent')
    assert agent_state(agent)[0] == "draft"


@pytest.mark.parametrize("action", ["promote", "activate", "pause", "rollback", "archive"])
def test_viewer_forged_post_is_refused_and_changes_nothing(
    client: Client, owner: Any, viewer: Any, agent: Agent, action: str
) -> None:
    factories.to_production(agent, owner)
    new_version(agent, owner)
    factories.to_production(agent, owner, "1.3.0")
    agent_services.agent_transition(actor=Actor(user=owner), agent=agent, action="activate")
    login(client, viewer)
    before = agent_state(agent)
    events = AuditEvent.objects.count()

    partial = client.post(action_url(action), {"version": "1.3.0"}, headers=HTMX)
    page = client.post(action_url(action), {"version": "1.3.0"}, follow=True)

    assert partial.status_code == 403
    assertContains(partial, "You do not have permission", status_code=403)
    assert buttons(partial) == []
    assertContains(page, '<li class="msg msg-error">You do not have permission')
    assert agent_state(agent) == before
    assert AuditEvent.objects.count() == events


def test_team_member_may_not_archive_the_owners_agent(
    client: Client, other: Any, agent: Agent
) -> None:
    response = login(client, other).post(action_url("archive"), headers=HTMX)

    assertContains(response, "You do not have permission", status_code=403)
    assert agent_state(agent)[0] == "draft"


@pytest.mark.parametrize("action", ["promote", "activate", "pause", "deprecate", "archive"])
def test_outsider_gets_404_on_every_action(
    client: Client, outsider: Any, agent: Agent, action: str
) -> None:
    before = agent_state(agent)

    response = login(client, outsider).post(action_url(action), headers=HTMX)

    assert response.status_code == 404
    assertNotContains(response, NAME, status_code=404)
    assert agent_state(agent) == before


def test_archive_with_htmx_sends_the_browser_to_the_list(
    client: Client, owner: Any, agent: Agent
) -> None:
    login(client, owner)

    response = client.post(action_url("archive"), headers=HTMX)

    assert response.status_code == 204
    assert response["HX-Redirect"] == "/agents/"
    assert agent_state(agent)[0] == "archived"
    listing = client.get("/agents/")
    assertContains(listing, "Agent job-application-agent is now archived.")
    assert listed(listing) == []


def test_archive_without_htmx_redirects_to_the_list(
    client: Client, owner: Any, agent: Agent
) -> None:
    response = login(client, owner).post(action_url("archive"), follow=True)

    assertRedirects(response, "/agents/")
    assertContains(response, "Agent job-application-agent is now archived.")
    assert agent_state(agent)[0] == "archived"


def test_every_action_form_swaps_the_panel(client: Client, owner: Any, agent: Agent) -> None:
    """A refused action answers with the panel: every form must swap it in place, or the
    panel would land inside the button's own form."""
    factories.to_production(agent, owner)
    new_version(agent, owner)
    factories.to_production(agent, owner, "1.3.0")
    new_version(agent, owner, "1.4.0")

    response = login(client, owner).get(DETAIL)

    panel = re.search(r'<section id="agent-panel".*?</section>', html(response), re.S)
    assert panel is not None
    forms = re.findall(r"<form [^>]*hx-post=[^>]*>", panel.group(0))
    assert len(forms) == len(buttons(response)) == 4  # activate, rollback, archive, promote
    for form in forms:
        assert 'hx-target="#agent-panel"' in form
        assert 'hx-swap="outerHTML"' in form
    # the page's other forms (Run, webhook secret) swap their own sections
    others = re.findall(r"<form [^>]*hx-post=[^>]*>", html(response).replace(panel.group(0), ""))
    assert sorted(re.search(r'hx-target="([^"]+)"', form).group(1) for form in others) == [
        "#run",
        "#webhook",
    ]
    for form in others:
        assert 'hx-swap="outerHTML"' in form


def test_unknown_action_is_404(client: Client, owner: Any, agent: Agent) -> None:
    response = login(client, owner).post(action_url("explode"), headers=HTMX)

    assert response.status_code == 404
    assert agent_state(agent) == ("draft", None, None, {"1.2.0": "draft"})


def test_action_refuses_get(client: Client, owner: Any, agent: Agent) -> None:
    response = login(client, owner).get(action_url("promote"))

    assert response.status_code == 405
    assert agent_state(agent)[2] is None


def test_action_without_csrf_token_is_refused(owner: Any, agent: Agent) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    response = client.post(action_url("promote"), {"version": "1.2.0"}, headers=HTMX)

    assert response.status_code == 403
    assertContains(response, "This form expired", status_code=403)
    assert agent_state(agent)[2] is None


def test_action_with_the_csrf_token_from_the_page_works(owner: Any, agent: Agent) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    page = client.get(DETAIL)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', html(page))
    assert token is not None

    response = client.post(
        action_url("promote"),
        {"version": "1.2.0"},
        headers={**HTMX, "X-CSRFToken": token.group(1)},
    )

    assert response.status_code == 200
    assert agent_state(agent)[2] == "1.2.0"


# --- diff ---------------------------------------------------------------------------------


@pytest.fixture
def two_versions(owner: Any, agent: Agent) -> Agent:
    factories.to_production(agent, owner)
    new_version(agent, owner, "1.3.0", capabilities={"execute": True})
    return agent


@pytest.mark.parametrize(
    ("who", "status"),
    [("owner", 200), ("other", 200), ("viewer", 200), ("outsider", 404)],
)
def test_diff_page_shows_field_changes(
    request: Any, client: Client, two_versions: Agent, who: str, status: int
) -> None:
    response = login(client, request.getfixturevalue(who)).get(
        f"/agents/{NAME}/diff", {"from": "1.2.0", "to": "1.3.0"}
    )

    assert response.status_code == status
    if status == 404:
        assertNotContains(response, "capabilities.execute", status_code=404)
        return
    assertTemplateUsed(response, "agents/diff.html")
    assertContains(response, "job-application-agent: 1.2.0 → 1.3.0")
    rows = re.findall(
        r'<tr class="change-([a-z]+)">\s*<td><code>([^<]+)</code></td>', html(response)
    )
    assert rows == [("changed", "changelog"), ("changed", "capabilities.execute")]
    assertContains(response, "2 changes from <strong>1.2.0</strong> to <strong>1.3.0</strong>")


def test_diff_htmx_request_returns_the_diff_partial(
    client: Client, owner: Any, two_versions: Agent
) -> None:
    response = login(client, owner).get(
        f"/agents/{NAME}/diff", {"from": "1.3.0", "to": "1.2.0"}, headers=HTMX
    )

    assert response.status_code == 200
    assertTemplateUsed(response, "agents/_diff.html")
    assertTemplateNotUsed(response, "base.html")
    assert html(response).lstrip().startswith('<div id="diff-result">')
    assertContains(response, "<code>capabilities.execute</code>")


def test_diff_of_a_version_with_itself_says_identical(
    client: Client, owner: Any, two_versions: Agent
) -> None:
    response = login(client, owner).get(
        f"/agents/{NAME}/diff", {"from": "1.3.0", "to": "1.3.0"}, headers=HTMX
    )

    assertContains(response, "1.3.0 and 1.3.0 are identical.")
    assertNotContains(response, "<table")


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize(
    "params", [{"from": "1.2.0", "to": "9.9.9"}, {"from": "0.0.1", "to": "1.2.0"}]
)
def test_diff_of_an_unknown_version_is_404(
    client: Client, owner: Any, two_versions: Agent, htmx: bool, params: dict[str, str]
) -> None:
    response = login(client, owner).get(
        f"/agents/{NAME}/diff", params, headers=HTMX if htmx else {}
    )

    assert response.status_code == 404
    assertContains(response, '<p class="msg msg-error" role="alert">', status_code=404)
    assertContains(response, "has no version", status_code=404)
    assertNotContains(response, "<table", status_code=404)


@pytest.mark.parametrize("params", [{}, {"from": "1.2.0"}, {"to": "1.2.0", "from": ""}])
def test_diff_without_two_versions_is_400_and_says_so(
    client: Client, owner: Any, two_versions: Agent, params: dict[str, str]
) -> None:
    response = login(client, owner).get(f"/agents/{NAME}/diff", params, headers=HTMX)

    assertContains(response, "Choose two versions to compare: from and to.", status_code=400)
    assertNotContains(response, "<table", status_code=400)


def test_diff_of_an_unknown_agent_is_404(client: Client, owner: Any) -> None:
    response = login(client, owner).get("/agents/nobody/diff", {"from": "1.0.0", "to": "1.0.0"})

    assert response.status_code == 404


# --- new version --------------------------------------------------------------------------


def test_version_new_form_suggests_the_next_patch_and_lists_clone_sources(
    client: Client, owner: Any, two_versions: Agent
) -> None:
    response = login(client, owner).get(f"/agents/{NAME}/versions/new")

    assert response.status_code == 200
    assertContains(response, 'name="version" value="1.3.1"')
    assertContains(response, '<option value="1.3.0">1.3.0 (draft)</option>')
    assertContains(response, '<option value="1.2.0">1.2.0 (production)</option>')


@pytest.mark.parametrize(("who", "status"), [("owner", 302), ("other", 302), ("outsider", 404)])
def test_version_new_clones_into_a_draft_and_goes_to_edit(
    request: Any, client: Client, agent: Agent, who: str, status: int
) -> None:
    user = request.getfixturevalue(who)
    login(client, user)
    assert client.get(f"/agents/{NAME}/versions/new").status_code == (200 if status == 302 else 404)

    response = client.post(
        f"/agents/{NAME}/versions/new",
        {"version": "1.2.1", "clone_from": "1.2.0", "changelog": "More boards"},
    )

    assert response.status_code == status
    if status == 404:
        assert not agent.versions.filter(version="1.2.1").exists()
        return
    assertRedirects(response, f"/agents/{NAME}/versions/1.2.1/edit", fetch_redirect_response=False)
    created = agent.versions.get(version="1.2.1")
    assert created.stage == "draft"
    assert created.changelog == "More boards"
    assert created.created_by == user
    assert created.config == agent.versions.get(version="1.2.0").config
    page = client.get(response["Location"])
    assertContains(page, "Draft 1.2.1 created.")


def test_version_new_is_forbidden_to_a_viewer(client: Client, viewer: Any, agent: Agent) -> None:
    login(client, viewer)

    assert client.get(f"/agents/{NAME}/versions/new").status_code == 403
    response = client.post(
        f"/agents/{NAME}/versions/new", {"version": "1.2.1", "clone_from": "1.2.0"}
    )

    assert response.status_code == 403
    assert list(agent.versions.values_list("version", flat=True)) == ["1.2.0"]


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"version": "1.3", "clone_from": "1.2.0"}, 400, "Must be a semantic version"),
        ({"version": "", "clone_from": "1.2.0"}, 400, "This field is required."),
        ({"version": "1.3.0", "clone_from": "0.0.9"}, 400, "Select a valid choice."),
        ({"version": "1.2.0", "clone_from": "1.2.0"}, 409, "already has version 1.2.0"),
    ],
)
def test_version_new_shows_errors_and_creates_nothing(
    client: Client, owner: Any, agent: Agent, data: dict[str, str], status: int, message: str
) -> None:
    response = login(client, owner).post(f"/agents/{NAME}/versions/new", data)

    assertContains(response, message, status_code=status)
    assertTemplateUsed(response, "agents/version_new.html")
    assert list(agent.versions.values_list("version", flat=True)) == ["1.2.0"]


# --- edit version -------------------------------------------------------------------------


def edit_url(version: str = "1.2.0") -> str:
    return f"/agents/{NAME}/versions/{version}/edit"


def edited_config(agent: Agent, **change: Any) -> str:
    config = agent.versions.get(version="1.2.0").config
    return json.dumps({**config, **change})


@pytest.mark.parametrize(("who", "status"), [("owner", 302), ("other", 302), ("outsider", 404)])
def test_version_edit_saves_the_draft(
    request: Any, client: Client, agent: Agent, who: str, status: int
) -> None:
    login(client, request.getfixturevalue(who))
    page = client.get(edit_url())
    assert page.status_code == (200 if status == 302 else 404)
    if status == 302:
        assertContains(page, '<textarea name="config"')
        assertContains(page, "&quot;n8n_workflow_id&quot;: &quot;wf_abc123&quot;")

    response = client.post(
        edit_url(),
        {
            "config": edited_config(agent, n8n_workflow_id="wf_new"),
            "changelog": "new workflow",
        },
    )

    assert response.status_code == status
    version = agent.versions.get(version="1.2.0")
    if status == 404:
        assert version.config["n8n_workflow_id"] == "wf_abc123"
        return
    assertRedirects(response, DETAIL, fetch_redirect_response=False)
    assert version.config["n8n_workflow_id"] == "wf_new"
    assert version.changelog == "new workflow"
    assert AuditEvent.objects.filter(
        action="agent_version.updated", target_id=str(version.pk)
    ).exists()


@pytest.mark.parametrize(
    ("config", "messages"),
    [
        ('{"runtime": "n8n",', ["Not valid JSON"]),
        ("[1, 2]", ["The config is a JSON object."]),
        ("", ["This field is required."]),
        (
            json.dumps(
                {
                    "runtime": "n8n",
                    "n8n_workflow_id": "wf",
                    "capabilities": {"read": "yes", "admin": True},
                }
            ),
            ["capabilities.read: ", "capabilities.admin: "],
        ),
    ],
    ids=["truncated-json", "not-an-object", "empty", "invalid-fields"],
)
def test_version_edit_shows_errors_and_keeps_the_draft(
    client: Client, owner: Any, agent: Agent, config: str, messages: list[str]
) -> None:
    before = agent.versions.get().config

    response = login(client, owner).post(edit_url(), {"config": config, "changelog": "x"})

    assert response.status_code == 400
    assertContains(response, '<ul class="errors" role="alert">', status_code=400)
    for message in messages:
        assertContains(response, message, status_code=400)
    assertContains(response, '<textarea name="config"', status_code=400)
    version = agent.versions.get()
    assert version.config == before
    assert version.changelog == ""


def test_version_that_left_draft_is_read_only_and_a_post_changes_nothing(
    client: Client, owner: Any, agent: Agent
) -> None:
    factories.to_production(agent, owner)
    version = agent.versions.get()
    before = (version.config, version.changelog, version.config_hash)
    login(client, owner)

    page = client.get(edit_url())
    response = client.post(
        edit_url(), {"config": edited_config(agent, n8n_workflow_id="wf_new"), "changelog": "x"}
    )

    assertContains(page, "a version that has left draft is immutable")
    assertNotContains(page, "<textarea")
    assertNotContains(page, "Save draft")
    assert response.status_code == 409
    assertContains(
        response,
        "Version 1.2.0 of &#x27;job-application-agent&#x27; is production",
        status_code=409,
    )
    assertNotContains(response, "<textarea", status_code=409)
    version.refresh_from_db()
    assert (version.config, version.changelog, version.config_hash) == before


def test_viewer_sees_the_draft_read_only_and_a_forged_post_is_refused(
    client: Client, viewer: Any, agent: Agent
) -> None:
    before = agent.versions.get().config
    login(client, viewer)

    page = client.get(edit_url())
    response = client.post(
        edit_url(), {"config": edited_config(agent, n8n_workflow_id="wf_new"), "changelog": "x"}
    )

    assert page.status_code == 200
    assertContains(page, "&quot;wf_abc123&quot;")
    assertNotContains(page, "<textarea")
    assert response.status_code == 403
    assertContains(response, "You do not have permission", status_code=403)
    version = agent.versions.get()
    assert version.config == before
    assert version.changelog == ""


def test_version_edit_of_an_unknown_version_is_404(
    client: Client, owner: Any, agent: Agent
) -> None:
    login(client, owner)

    assert client.get(edit_url("9.9.9")).status_code == 404
    assert client.post(edit_url("9.9.9"), {"config": "{}"}).status_code == 404


def test_draft_of_an_archived_agent_is_read_only_and_a_post_changes_nothing(
    client: Client, owner: Any, agent: Agent
) -> None:
    agent_services.agent_transition(actor=Actor(user=owner), agent=agent, action="archive")
    login(client, owner)

    page = client.get(edit_url())
    response = client.post(
        edit_url(), {"config": edited_config(agent, n8n_workflow_id="wf_new"), "changelog": "x"}
    )

    assertNotContains(page, "<textarea")
    assert response.status_code == 409
    assert agent.versions.get().config["n8n_workflow_id"] == "wf_abc123"


# --- registering an agent without the admin ---------------------------------------------------

REGISTER = "/agents/new"


def test_an_operator_registers_an_agent_from_the_console(client: Client, owner: Any) -> None:
    login(client, owner)
    page = client.get(REGISTER)
    assertContains(page, "Register an agent")
    assertContains(page, "&quot;provider&quot;: &quot;simulated&quot;")  # a starter config
    listing = client.get("/agents/")
    assertContains(listing, f'href="{REGISTER}"')

    response = client.post(
        REGISTER,
        {
            "name": "invoice-checker",
            "description": "Checks invoices.",
            "owner_email": "alice@company.com",
            "team": "team-a",
            "tags": "finance, tier-1",
            "version": "1.0.0",
            "config": json.dumps({"llm": {"provider": "simulated"}, "trigger_type": "manual"}),
        },
    )

    assertRedirects(response, "/agents/invoice-checker/")
    agent = Agent.objects.get(name="invoice-checker")
    assert agent.status == "draft" and agent.team.name == "team-a"
    assert sorted(agent.tags.values_list("name", flat=True)) == ["finance", "tier-1"]
    assert agent.versions.get().version == "1.0.0"
    assert AuditEvent.objects.filter(action="agent.created", target_id=str(agent.pk)).exists()


def test_registering_shows_each_problem_where_it_is_and_creates_nothing(
    client: Client, owner: Any
) -> None:
    login(client, owner)
    response = client.post(
        REGISTER,
        {
            "name": "Bad Name",
            "owner_email": "alice@company.com",
            "version": "one",
            "config": json.dumps({"llm": {"provider": "nope"}, "timeout_seconds": 0}),
        },
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "lowercase letters" in body  # the name
    assert "semantic version" in body  # the version
    assert "llm.provider" in body and "timeout_seconds" in body  # config paths
    assert not Agent.objects.filter(description="").exclude(name=NAME).exists()

    bad_json = client.post(
        REGISTER,
        {"name": "ok", "owner_email": "a@b.co", "version": "1.0.0", "config": "{nope"},
    )
    assertContains(bad_json, "Not valid JSON", status_code=400)


def test_a_viewer_may_not_register(client: Client, viewer: Any) -> None:
    login(client, viewer)
    assert client.get(REGISTER).status_code == 403
    assert client.post(REGISTER, {"name": "x"}).status_code == 403
    assertNotContains(client.get("/agents/"), f'href="{REGISTER}"')
