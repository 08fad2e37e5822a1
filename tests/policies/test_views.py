"""The policies pages: the list (filters, badges, empty states), the form with each type's
own fields (valid and invalid input for every type, the type switched with HTMX or by a
reload), enable / disable / delete, and the dry run.

Pages are opened by the trio (alice owns the agent, bob is permitted through team-a,
charlie is an outsider), vera (a viewer of team-a) and an admin. HTMX requests carry
``HX-Request: true`` as htmx itself sends it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from pytest_django.asserts import assertTemplateNotUsed, assertTemplateUsed

from agents.models import Agent
from controlplane.models import AuditEvent
from executions.models import Execution
from policies.models import Policy
from tests import factories

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
LIST = "/policies/"
NEW = "/policies/new"
DRY_RUN = "/policies/dry-run"
RATE_LIMIT = {"max_executions": 10, "window_minutes": 60, "action_on_violation": "reject"}
BUSINESS_HOURS = {
    "allowed_days": ["MON", "TUE", "WED", "THU", "FRI"],
    "allowed_hours": list(range(9, 18)),
    "timezone": "America/New_York",
    "action_on_violation": "delay_until_allowed",
}


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def html(response: Any) -> str:
    return response.content.decode()


def rows(response: Any) -> list[str]:
    """The policy names in the list table, in order."""
    return re.findall(r'<tr id="policy-[^"]+" data-policy="([^"]+)">', html(response))


def buttons(response: Any) -> list[str]:
    return re.findall(r'data-action="([a-z-]+)"', html(response))


def edit_url(policy: Policy) -> str:
    return f"/policies/{policy.pk}/"


@pytest.fixture
def three(agent: Agent, admin_user: Any, owner: Any) -> dict[str, Policy]:
    return {
        "all": factories.policy(admin_user, "everyone-limit", "rate_limit", RATE_LIMIT),
        "agent": factories.policy(
            owner, "job-limit", "rate_limit", RATE_LIMIT, agent=agent, priority=20
        ),
        "tag": factories.policy(
            admin_user,
            "recruiting-hours",
            "time_window",
            BUSINESS_HOURS,
            tags=["recruiting"],
            priority=30,
            enabled=False,
        ),
    }


# --- the list ------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "other", "viewer", "admin_user"])
def test_list_shows_every_policy_to_every_role_that_may_view_them(
    client: Client, three: dict[str, Policy], who: str, request: pytest.FixtureRequest
) -> None:
    response = login(client, request.getfixturevalue(who)).get(LIST)

    assert response.status_code == 200
    assertTemplateUsed(response, "policies/list.html")
    assert rows(response) == ["job-limit", "recruiting-hours", "everyone-limit"]


def test_the_list_leaves_out_policies_of_agents_the_user_may_not_see(
    client: Client, three: dict[str, Policy], outsider: Any
) -> None:
    response = login(client, outsider).get(LIST)

    assert rows(response) == ["recruiting-hours", "everyone-limit"]
    assert "job-application-agent" not in html(response)


def test_list_shows_badges_and_scopes(client: Client, three: dict[str, Policy], owner: Any) -> None:
    page = html(login(client, owner).get(LIST))

    assert '<span class="badge policy-enabled">enabled</span>' in page
    assert '<span class="badge policy-disabled">disabled</span>' in page
    assert "agent <strong>job-application-agent</strong>" in page
    assert 'class="tag" href="/policies/?tag=recruiting">recruiting</a>' in page
    assert "all agents" in page
    assert '<span class="badge policy-type">Time Window</span>' in page


def test_operator_gets_buttons_and_viewer_none(
    client: Client, three: dict[str, Policy], owner: Any, viewer: Any
) -> None:
    operator_page = login(client, owner).get(LIST)
    viewer_page = login(Client(), viewer).get(LIST)

    assert buttons(operator_page) == ["disable", "delete", "enable", "delete", "disable", "delete"]
    assert "New policy" in html(operator_page)
    assert buttons(viewer_page) == []
    assert "New policy" not in html(viewer_page)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"type": "time_window"}, ["recruiting-hours"]),
        ({"scope": "all"}, ["everyone-limit"]),
        ({"enabled": "false"}, ["recruiting-hours"]),
        ({"agent": "job-application-agent"}, ["job-limit", "recruiting-hours", "everyone-limit"]),
        ({"agent": "job-application-agent", "enabled": "true"}, ["job-limit", "everyone-limit"]),
        ({"tag": "recruiting"}, ["recruiting-hours"]),
    ],
)
def test_list_filters(
    client: Client, three: dict[str, Policy], owner: Any, query: dict, expected: list[str]
) -> None:
    assert rows(login(client, owner).get(LIST, query)) == expected


def test_list_filter_by_htmx_returns_the_table_only(
    client: Client, three: dict[str, Policy], owner: Any
) -> None:
    response = login(client, owner).get(LIST, {"scope": "tag"}, headers=HTMX)

    assertTemplateUsed(response, "policies/_list_table.html")
    assertTemplateNotUsed(response, "policies/list.html")
    assert rows(response) == ["recruiting-hours"]
    assert "HX-Request" in response["Vary"]


def test_agent_filter_with_an_agent_one_cannot_see(
    client: Client, three: dict[str, Policy], outsider: Any
) -> None:
    response = login(client, outsider).get(LIST, {"agent": "job-application-agent"})

    assert rows(response) == []
    assert "No agent &#x27;job-application-agent&#x27;." in html(response)


def test_empty_states(client: Client, agent: Agent, owner: Any, viewer: Any) -> None:
    empty = html(login(client, owner).get(LIST))
    filtered = html(login(client, owner).get(LIST, {"type": "concurrency"}))
    for_viewer = html(login(Client(), viewer).get(LIST))

    assert "No policies yet" in empty
    assert 'href="/policies/new">Create one</a>' in empty
    assert "No policies match" in filtered
    assert "No policies yet" in for_viewer
    assert "/policies/new" not in for_viewer


def test_pages_need_a_role_that_may_view_policies(client: Client, three: dict) -> None:
    service = factories.user("svc", role="agent-service")
    client = login(client, service)

    for url in (LIST, NEW, DRY_RUN, edit_url(three["all"])):
        assert client.get(url).status_code == 403, url


def test_anonymous_is_sent_to_log_in(client: Client) -> None:
    response = client.get(LIST)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_navigation_has_policies_after_executions(client: Client, owner: Any) -> None:
    page = html(login(client, owner).get(LIST))

    labels = re.findall(r'<li><a href="[^"]+"(?: aria-current="page")?>([^<]+)</a></li>', page)
    assert labels[:4] == ["Dashboard", "Agents", "Executions", "Policies"]
    assert '<a href="/policies/" aria-current="page">Policies</a>' in page


# --- the form: each type's fields ----------------------------------------------------------


def post_data(policy_type: str, rules: dict[str, Any], **common: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "policy_name": f"new-{policy_type}",
        "policy_type": policy_type,
        "applies_to": "all",
        "target_agent": "",
        "target_tags": "",
        "enabled": "on",
        "priority": "100",
        **common,
    }
    data.update({f"rules-{key}": value for key, value in rules.items()})
    return data


VALID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "rate_limit",
        {"max_executions": "50", "window_minutes": "60", "action_on_violation": "queue"},
        {"max_executions": 50, "window_minutes": 60, "action_on_violation": "queue"},
    ),
    (
        "time_window",
        {
            "allowed_days": ["MON", "TUE", "WED", "THU", "FRI"],
            "allowed_hours": [str(hour) for hour in range(9, 18)],
            "timezone": "America/New_York",
            "blackout_dates": "2026-12-25\n\n2026-12-24\n",
            "action_on_violation": "delay_until_allowed",
        },
        {**BUSINESS_HOURS, "blackout_dates": ["2026-12-24", "2026-12-25"]},
    ),
    (
        "approval_required",
        {
            "require_approval_for": ["send_email", "external_api_post"],
            "approvers": "manager@company.com\r\nops-team@company.com\r\n",
            "required_approvals": "2",
            "auto_expire_hours": "12.5",
            "risk_threshold": "high",
            "on_expire": "reject",
            "on_reject": "cancel",
            "allow_self_approval": "on",
            "warn_before_minutes": "",
        },
        {
            "require_approval_for": ["send_email", "external_api_post"],
            "approvers": ["manager@company.com", "ops-team@company.com"],
            "required_approvals": 2,
            "auto_expire_hours": 12.5,
            "risk_threshold": "high",
            "on_expire": "reject",
            "on_reject": "cancel",
            "allow_self_approval": True,
            "warn_before_minutes": None,
        },
    ),
    (
        "destination",
        {
            "allowed_destinations": ["slack", "email", "external_api"],
            "denied_destinations": ["webhook"],
            "allowed_domains": "company.com",
            "denied_channels": "#general\n#random",
            "allowed_recipients": "@company.com",
        },
        {
            "allowed_destinations": ["email", "slack", "external_api"],
            "denied_destinations": ["webhook"],
            "allowed_domains": ["company.com"],
            "denied_domains": [],
            "allowed_channels": [],
            "denied_channels": ["#general", "#random"],
            "allowed_recipients": ["@company.com"],
            "denied_recipients": [],
        },
    ),
    (
        "cost_budget",
        {
            "max_cost_usd": "25.5",
            "period": "month",
            "action": "require_approval",
            "timezone": "Europe/Paris",
        },
        {
            "max_cost_usd": 25.5,
            "period": "month",
            "action": "require_approval",
            "timezone": "Europe/Paris",
        },
    ),
    (
        "concurrency",
        {"max_running": "3", "action_on_violation": "reject"},
        {"max_running": 3, "action_on_violation": "reject"},
    ),
    (
        "model_routing",
        {
            "simple_provider": "openai",
            "simple_model": "gpt-4o-mini",
            "simple_max_tokens": "500",
            "complex_provider": "anthropic",
            "complex_model": "claude-sonnet-4-5",
            "complexity_detector": "hint",
            "simple_up_to": "300",
            "medium_up_to": "3000",
        },
        {
            "route_by_complexity": {
                "simple": {"provider": "openai", "model": "gpt-4o-mini", "max_tokens": 500},
                "complex": {
                    "provider": "anthropic",
                    "model": "claude-sonnet-4-5",
                    "max_tokens": None,
                },
            },
            "complexity_detector": "hint",
            "thresholds": {"simple_max_tokens": 300, "medium_max_tokens": 3000},
        },
    ),
    (
        "content_safety",
        {
            "pii": "redact",
            "prompt_injection": "flag",
            "custom_patterns": "employee-id: EMP-\\d{6}: redact\nsecret: (?i)top: secret",
            "check": ["input"],
        },
        {
            "pii": "redact",
            "prompt_injection": "flag",
            "custom_patterns": [
                {"name": "employee-id", "pattern": "EMP-\\d{6}", "action": "redact"},
                {"name": "secret", "pattern": "(?i)top: secret", "action": "block"},
            ],
            "check": ["input"],
        },
    ),
]


@pytest.mark.parametrize(("policy_type", "fields", "stored"), VALID, ids=[v[0] for v in VALID])
def test_each_type_is_created_from_its_own_fields(
    client: Client, admin_user: Any, policy_type: str, fields: dict, stored: dict
) -> None:
    client = login(client, admin_user)

    response = client.post(NEW, post_data(policy_type, fields))

    assert response.status_code == 302, response.context and {
        "form": response.context["form"].errors,
        "rules": response.context["rules_form"].errors,
    }
    assert response["Location"] == LIST
    policy = Policy.objects.get(policy_name=f"new-{policy_type}")
    assert (policy.policy_type, policy.rules, policy.created_by) == (
        policy_type,
        stored,
        admin_user,
    )
    [event] = AuditEvent.objects.filter(target_type="policy", target_id=str(policy.pk))
    assert (event.action, event.actor_label) == ("policy.created", "root")


INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "rate_limit",
        {"max_executions": "-1", "window_minutes": "60"},
        "max_executions",
        "rules.max_executions: ",
    ),
    (
        "rate_limit",
        {"max_executions": "", "window_minutes": "60"},
        "max_executions",
        "rules.max_executions: This field is required.",
    ),
    (
        "rate_limit",
        {"max_executions": "lots", "window_minutes": "60"},
        "max_executions",
        "Enter a whole number.",
    ),
    (
        "time_window",
        {"allowed_hours": ["9"], "timezone": "UTC"},
        "allowed_days",
        "rules.allowed_days: ",
    ),
    (
        "time_window",
        {"allowed_days": ["MON"], "allowed_hours": ["24"]},
        "allowed_hours",
        "Select a valid choice.",
    ),
    (
        "time_window",
        {"allowed_days": ["MON"], "allowed_hours": ["9"], "timezone": "Mars/Olympus"},
        "timezone",
        "rules.timezone: Unknown time zone",
    ),
    (
        "time_window",
        {"allowed_days": ["MON"], "allowed_hours": ["9"], "blackout_dates": "2026-13-01"},
        "blackout_dates",
        "rules.blackout_dates: ",
    ),
    (
        "approval_required",
        {"approvers": "boss@company.com"},
        "require_approval_for",
        "rules.require_approval_for: ",
    ),
    (
        "approval_required",
        {"require_approval_for": ["execute"], "approvers": "not-an-address"},
        "approvers",
        "rules.approvers: ",
    ),
    (
        "approval_required",
        {
            "require_approval_for": ["execute"],
            "approvers": "a@company.com",
            "required_approvals": "2",
        },
        "required_approvals",
        "rules.required_approvals: Only 1 approvers",
    ),
    ("destination", {"denied_domains": "x" * 300}, "denied_domains", "rules.denied_domains[0]: "),
    ("cost_budget", {"max_cost_usd": "-5"}, "max_cost_usd", "rules.max_cost_usd: "),
    ("concurrency", {"max_running": "0"}, "max_running", "rules.max_running: "),
    (
        "model_routing",
        {"complexity_detector": "hint"},
        "simple_provider",
        "rules.route_by_complexity: ",
    ),
    (
        "model_routing",
        {"medium_model": "m", "complexity_detector": "hint"},
        "medium_provider",
        "rules.route_by_complexity.medium.provider: ",
    ),
    (
        "model_routing",
        {
            "simple_provider": "openai",
            "simple_model": "m",
            "complexity_detector": "hint",
            "simple_up_to": "3000",
            "medium_up_to": "2000",
        },
        "simple_up_to",
        "rules.thresholds: ",
    ),
    (
        "content_safety",
        {"custom_patterns": "bad: (", "check": ["input"]},
        "custom_patterns",
        "rules.custom_patterns[0].pattern: Not a regular expression",
    ),
    (
        "content_safety",
        {"custom_patterns": "no colon here", "check": ["input"]},
        "custom_patterns",
        "Line 1: ",
    ),
    ("content_safety", {}, "check", "rules.check: "),
]


@pytest.mark.parametrize(
    ("policy_type", "fields", "field", "error"),
    INVALID,
    ids=[f"{v[0]}-{v[2]}-{i}" for i, v in enumerate(INVALID)],
)
def test_invalid_input_is_shown_on_its_field(
    client: Client, admin_user: Any, policy_type: str, fields: dict, field: str, error: str
) -> None:
    response = login(client, admin_user).post(NEW, post_data(policy_type, fields))

    assert response.status_code == 400
    errors = response.context["rules_form"].errors.get(field, [])
    assert any(message.startswith(error) for message in errors), response.context[
        "rules_form"
    ].errors
    assert f'data-field="{field}"' in html(response)
    assert not Policy.objects.exists()


def test_new_form_starts_with_the_rate_limit_fields(client: Client, owner: Any) -> None:
    response = login(client, owner).get(NEW)

    assert response.status_code == 200
    assertTemplateUsed(response, "policies/form.html")
    assert 'data-type="rate_limit"' in html(response)
    assert 'name="rules-max_executions"' in html(response)


def test_changing_the_type_with_htmx_swaps_in_its_fields(client: Client, owner: Any) -> None:
    response = login(client, owner).get(NEW, {"policy_type": "time_window"}, headers=HTMX)

    assert response.status_code == 200
    assertTemplateUsed(response, "policies/_rules_fields.html")
    assertTemplateNotUsed(response, "policies/form.html")
    page = html(response)
    assert page.startswith('<fieldset id="rules-fields"')
    assert 'data-type="time_window"' in page
    hours = re.findall(r'name="rules-allowed_hours" value="(\d+)"', page)
    assert hours == [str(hour) for hour in range(24)]
    days = re.findall(r'name="rules-allowed_days" value="([A-Z]+)"', page)
    assert days == ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
    assert '<option value="America/New_York">' in page  # the time zone suggestions
    assert "rules-max_executions" not in page


@pytest.mark.parametrize("policy_type", [value for value, _ in Policy.Type.choices])
def test_every_type_has_its_own_fields(client: Client, owner: Any, policy_type: str) -> None:
    response = login(client, owner).get(NEW, {"policy_type": policy_type}, headers=HTMX)

    names = set(re.findall(r'name="rules-([a-z_]+)"', html(response)))
    form_fields = set(response.context["rules_form"].fields)
    assert names == form_fields
    assert names  # not a JSON box: the type's own fields


def test_the_type_switch_works_without_javascript(client: Client, owner: Any) -> None:
    response = login(client, owner).get(
        NEW,
        {
            "policy_name": "typed-so-far",
            "policy_type": "concurrency",
            "priority": "7",
            "switch": "1",
        },
    )

    assert response.status_code == 200
    assertTemplateUsed(response, "policies/form.html")
    page = html(response)
    assert 'data-type="concurrency"' in page
    assert 'name="rules-max_running"' in page
    assert 'value="typed-so-far"' in page
    assert '<option value="concurrency" selected>' in page
    assert 'formmethod="get"' in page  # the no-JavaScript button


def test_operator_may_create_a_policy_for_their_agent(
    client: Client, agent: Agent, other: Any
) -> None:
    response = login(client, other).post(
        NEW,
        post_data(
            "concurrency",
            {"max_running": "2", "action_on_violation": "queue"},
            applies_to="agent",
            target_agent="job-application-agent",
        ),
    )

    assert response.status_code == 302
    policy = Policy.objects.get()
    assert (policy.target_agent, policy.created_by) == (agent, other)


def test_operator_is_offered_only_agents_they_may_change(
    client: Client, agent: Agent, outsider: Any, owner: Any
) -> None:
    factories.agent(outsider, payload=factories.LLM_AGENT)

    response = login(client, owner).get(NEW)

    assert list(response.context["form"].fields["target_agent"].queryset) == [agent]


def test_service_refusals_are_shown_on_the_form(client: Client, agent: Agent, owner: Any) -> None:
    client = login(client, owner)

    tag_policy = client.post(
        NEW,
        post_data("concurrency", {"max_running": "2"}, applies_to="tag", target_tags="recruiting"),
    )
    missing_target = client.post(
        NEW, post_data("concurrency", {"max_running": "2"}, applies_to="agent")
    )

    assert tag_policy.status_code == 403
    assert tag_policy.context["form"].non_field_errors() == [
        "A policy for all agents or for a tag takes an admin."
    ]
    assert missing_target.status_code == 400
    assert missing_target.context["form"].errors["target_agent"] == [
        "A policy for one agent names it."
    ]
    assert not Policy.objects.exists()


def test_scope_errors_are_put_on_their_fields(client: Client, admin_user: Any) -> None:
    response = login(client, admin_user).post(
        NEW, post_data("concurrency", {"max_running": "2"}, applies_to="tag")
    )

    assert response.status_code == 400
    assert response.context["form"].errors["target_tags"] == [
        "A policy for a tag names at least one."
    ]


def test_duplicate_name_is_shown(client: Client, three: dict, admin_user: Any) -> None:
    response = login(client, admin_user).post(
        NEW, post_data("concurrency", {"max_running": "2"}, policy_name="everyone-limit")
    )

    assert response.status_code == 409
    assert "exists" in " ".join(response.context["form"].non_field_errors())


def test_viewer_cannot_open_the_new_form(client: Client, viewer: Any) -> None:
    client = login(client, viewer)

    assert client.get(NEW).status_code == 403
    assert client.post(NEW, post_data("concurrency", {"max_running": "2"})).status_code == 403
    assert not Policy.objects.exists()


# --- editing -------------------------------------------------------------------------------


def test_edit_form_shows_the_stored_rules_in_their_fields(
    client: Client, three: dict[str, Policy], admin_user: Any
) -> None:
    page = html(login(client, admin_user).get(edit_url(three["tag"])))

    checked_hours = re.findall(r'name="rules-allowed_hours" value="(\d+)"[^>]*checked', page)
    checked_days = re.findall(r'name="rules-allowed_days" value="([A-Z]+)"[^>]*checked', page)
    assert checked_hours == [str(hour) for hour in range(9, 18)]
    assert checked_days == ["MON", "TUE", "WED", "THU", "FRI"]
    assert 'value="America/New_York"' in page
    assert 'value="recruiting"' in page  # the tags, by name


def test_switching_back_to_the_stored_type_shows_the_stored_rules(
    client: Client, three: dict[str, Policy], admin_user: Any
) -> None:
    client = login(client, admin_user)
    url = edit_url(three["agent"])

    other_type = html(client.get(url, {"policy_type": "concurrency"}, headers=HTMX))
    own_type = html(client.get(url, {"policy_type": "rate_limit"}, headers=HTMX))

    assert 'name="rules-max_running"' in other_type
    assert 'name="rules-max_executions" value="10"' in own_type


@pytest.mark.parametrize("who", ["owner", "other"])
def test_owner_and_permitted_change_the_agent_policy(
    client: Client, three: dict[str, Policy], who: str, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(who)
    policy = three["agent"]

    response = login(client, user).post(
        edit_url(policy),
        post_data(
            "rate_limit",
            {"max_executions": "3", "window_minutes": "5", "action_on_violation": "queue"},
            policy_name="job-limit",
            applies_to="agent",
            target_agent="job-application-agent",
            priority="15",
        ),
    )

    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.rules, policy.priority) == (
        {"max_executions": 3, "window_minutes": 5, "action_on_violation": "queue"},
        15,
    )
    event = AuditEvent.objects.filter(target_id=str(policy.pk)).latest("id")
    assert (event.action, event.actor_label) == ("policy.updated", user.username)


def test_outsider_neither_sees_nor_changes_a_hidden_agents_policy(
    client: Client, three: dict[str, Policy], outsider: Any
) -> None:
    policy = three["agent"]
    client = login(client, outsider)

    page = client.get(edit_url(policy))
    response = client.post(
        edit_url(policy),
        post_data(
            "rate_limit",
            {"max_executions": "1", "window_minutes": "5"},
            policy_name="job-limit",
            applies_to="all",
        ),
    )

    assert page.status_code == 404
    assert response.status_code == 404
    policy.refresh_from_db()
    assert policy.rules == RATE_LIMIT


def test_viewer_gets_a_read_only_page(
    client: Client, three: dict[str, Policy], viewer: Any
) -> None:
    client = login(client, viewer)

    page = client.get(edit_url(three["tag"]))
    post = client.post(edit_url(three["tag"]), post_data("concurrency", {"max_running": "1"}))

    assert page.status_code == 200
    assert 'id="policy-rules"' in html(page)
    assert "America/New_York" in html(page)
    assert '<form method="post" id="policy-form"' not in html(page)
    assert buttons(page) == []
    assert post.status_code == 403
    three["tag"].refresh_from_db()
    assert three["tag"].policy_type == "time_window"


def test_unknown_policy_is_404(client: Client, owner: Any) -> None:
    assert (
        login(client, owner).get("/policies/00000000-0000-0000-0000-000000000000/").status_code
        == 404
    )


# --- enable, disable, delete ---------------------------------------------------------------


def test_disable_with_htmx_swaps_the_row(
    client: Client, three: dict[str, Policy], owner: Any
) -> None:
    policy = three["agent"]

    response = login(client, owner).post(f"/policies/{policy.pk}/disable", headers=HTMX)

    assert response.status_code == 200
    assertTemplateUsed(response, "policies/_row.html")
    assert html(response).startswith(f'<tr id="policy-{policy.pk}"')
    assert "policy-disabled" in html(response)
    assert buttons(response) == ["enable", "delete"]
    policy.refresh_from_db()
    assert not policy.enabled


def test_enable_without_javascript_redirects_with_a_message(
    client: Client, three: dict[str, Policy], admin_user: Any
) -> None:
    policy = three["tag"]
    client = login(client, admin_user)

    response = client.post(f"/policies/{policy.pk}/enable", {"next": edit_url(policy)})

    assert response.status_code == 302
    assert response["Location"] == edit_url(policy)
    messages = [str(m) for m in client.get(response["Location"]).context["messages"]]
    assert messages == ["Policy recruiting-hours is enabled."]
    policy.refresh_from_db()
    assert policy.enabled


def test_toggle_refused_shows_why_in_the_row(
    client: Client, three: dict[str, Policy], owner: Any
) -> None:
    policy = three["all"]

    response = login(client, owner).post(f"/policies/{policy.pk}/disable", headers=HTMX)

    assert response.status_code == 403
    assert "A policy for all agents or for a tag takes an admin." in html(response)
    policy.refresh_from_db()
    assert policy.enabled


def test_toggle_refused_to_viewer(client: Client, three: dict[str, Policy], viewer: Any) -> None:
    policy = three["agent"]

    response = login(client, viewer).post(
        f"/policies/{policy.pk}/disable", {"next": "https://evil.example/"}
    )

    assert response["Location"] == LIST  # and never to another site
    policy.refresh_from_db()
    assert policy.enabled


def test_toggle_of_a_hidden_agents_policy_is_404(
    client: Client, three: dict[str, Policy], outsider: Any
) -> None:
    policy = three["agent"]

    response = login(client, outsider).post(f"/policies/{policy.pk}/disable")

    assert response.status_code == 404
    policy.refresh_from_db()
    assert policy.enabled


def test_delete_asks_then_deletes(client: Client, three: dict[str, Policy], owner: Any) -> None:
    policy = three["agent"]
    client = login(client, owner)

    confirm = client.get(f"/policies/{policy.pk}/delete")
    response = client.post(f"/policies/{policy.pk}/delete")

    assert confirm.status_code == 200
    assert "Delete policy job-limit?" in html(confirm)
    assert Policy.objects.filter(pk=policy.pk).exists() is False
    assert response["Location"] == LIST
    event = AuditEvent.objects.get(action="policy.deleted")
    assert (event.target_repr, event.actor_label) == ("job-limit", "alice")


def test_delete_refused_by_the_service_is_shown(
    client: Client, three: dict[str, Policy], owner: Any
) -> None:
    policy = three["all"]

    response = login(client, owner).post(f"/policies/{policy.pk}/delete")

    assert response.status_code == 403
    assert "A policy for all agents or for a tag takes an admin." in html(response)
    assert Policy.objects.filter(pk=policy.pk).exists()


def test_viewer_cannot_delete(client: Client, three: dict[str, Policy], viewer: Any) -> None:
    client = login(client, viewer)
    policy = three["agent"]

    assert client.get(f"/policies/{policy.pk}/delete").status_code == 403
    assert client.post(f"/policies/{policy.pk}/delete").status_code == 403
    assert Policy.objects.filter(pk=policy.pk).exists()


# --- the dry run ---------------------------------------------------------------------------


@pytest.fixture
def runner(owner: Any, other: Any) -> Agent:
    return factories.runnable_agent(owner, name="runner", team="team-a")


def test_dry_run_form(client: Client, runner: Agent, owner: Any) -> None:
    response = login(client, owner).get(DRY_RUN)

    assert response.status_code == 200
    assertTemplateUsed(response, "policies/dry_run.html")
    assert list(response.context["form"].fields["agent"].queryset) == [runner]
    assert response.context["decision"] is None


@pytest.mark.parametrize("who", ["owner", "other", "viewer"])
def test_dry_run_shows_the_decision_and_the_trace(
    client: Client, runner: Agent, admin_user: Any, who: str, request: pytest.FixtureRequest
) -> None:
    factories.policy(admin_user, "weekdays", "time_window", BUSINESS_HOURS, priority=10)
    factories.policy(admin_user, "everyone-limit", "rate_limit", RATE_LIMIT, priority=20)

    response = login(client, request.getfixturevalue(who)).get(
        DRY_RUN, {"agent": "runner", "at": "2026-01-17T17:00", "action": "execute"}
    )

    assert response.status_code == 200
    page = html(response)
    assert 'data-outcome="delay"' in page
    trace = re.findall(
        r'<tr data-policy="([^"]+)">.*?data-verdict="([a-z_]+)">.*?<td>([^<]*)</td>', page, re.S
    )
    assert [(name, verdict) for name, verdict, _ in trace] == [
        ("weekdays", "delay"),
        ("everyone-limit", "skipped"),
    ]
    assert "outside the allowed window" in trace[0][2]
    assert not Execution.objects.exists()


def test_dry_run_with_htmx_returns_the_result_only(
    client: Client, runner: Agent, owner: Any
) -> None:
    response = login(client, owner).get(DRY_RUN, {"agent": "runner"}, headers=HTMX)

    assertTemplateUsed(response, "policies/_dry_run.html")
    assertTemplateNotUsed(response, "policies/dry_run.html")
    assert 'data-outcome="allow"' in html(response)
    assert "No enabled policy applies to this agent." in html(response)


def test_dry_run_of_a_tool_call(client: Client, runner: Agent, admin_user: Any, owner: Any) -> None:
    factories.policy(
        admin_user, "approve-mail", "approval_required", {"require_approval_for": ["send_email"]}
    )

    response = login(client, owner).get(
        DRY_RUN, {"agent": "runner", "action": "send_email", "input": '{"to": "x@company.com"}'}
    )

    assert 'data-outcome="require_approval"' in html(response)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"agent": "runner", "input": "{not json"}, "input"),
        ({"agent": "runner", "at": "someday"}, "at"),
        ({"agent": "nobody"}, "agent"),
        ({"agent": "runner", "action": "fly"}, "action"),
    ],
)
def test_dry_run_bad_input(
    client: Client, runner: Agent, owner: Any, query: dict, field: str
) -> None:
    response = login(client, owner).get(DRY_RUN, query)

    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert response.context["decision"] is None


def test_dry_run_of_an_agent_the_user_cannot_see(
    client: Client, runner: Agent, outsider: Any
) -> None:
    response = login(client, outsider).get(DRY_RUN, {"agent": "runner"})

    assert response.status_code == 400
    assert "agent" in response.context["form"].errors


def test_dry_run_of_an_agent_without_production_version(
    client: Client, agent: Agent, owner: Any
) -> None:
    response = login(client, owner).get(DRY_RUN, {"agent": agent.name})

    assert response.status_code == 409
    assert "has no production version" in " ".join(response.context["form"].non_field_errors())
