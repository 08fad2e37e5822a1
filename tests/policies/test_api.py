"""The policies API: seed 000's payloads, per-type rules errors with their paths, the
filters and pages, PATCH / DELETE / enable / disable, and who may do what — the owner /
permitted / outsider trio, a viewer, an admin, a service account."""

from __future__ import annotations

from typing import Any

import pytest

from agents import access as agent_access
from agents import services as agent_services
from controlplane.access import Actor
from controlplane.models import AuditEvent
from policies.models import Policy
from tests import factories
from tests.api import assert_error, field_errors
from tests.policies.factories import (
    APPROVAL_SEED,
    COST_OPTIMIZATION_SEED,
    RATE_LIMIT_RULES,
    RATE_LIMIT_SEED,
    TIME_WINDOW_SEED,
    seed,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/policies"


def detail(policy: Policy) -> str:
    return f"{URL}/{policy.pk}"


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["policy_name"] for item in response.json()["results"]]


def global_limit(by: Any) -> Policy:
    return factories.policy(by, "global-rate-limit", "rate_limit", RATE_LIMIT_RULES)


def events(policy_id: Any) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(target_type="policy", target_id=str(policy_id)).order_by("id")
    )


@pytest.fixture
def job_app_agent(owner: Any, other: Any) -> Any:
    """The agent seed 000's rate-limit payload targets by name, shared with team-a."""
    return factories.agent(
        owner, team="team-a", payload=factories.seed_payload(name="agent_job_app_123")
    )


@pytest.fixture
def their_agent(outsider: Any) -> Any:
    """charlie's agent, which no one of team-a may see."""
    return factories.agent(outsider, payload=factories.LLM_AGENT)


@pytest.fixture
def agent_policy(agent: Any, owner: Any) -> Policy:
    """alice's rate limit for her team's agent (job-application-agent)."""
    return factories.policy(
        owner, "job-agent-limit", "rate_limit", RATE_LIMIT_RULES, agent=agent, priority=20
    )


# --- seed 000's payloads -------------------------------------------------------------------


def test_rate_limit_seed_payload_is_accepted_as_written(
    job_app_agent: Any, owner: Any, api_for: Any
) -> None:
    response = api_for(owner).post(URL, RATE_LIMIT_SEED, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {
        "policy_id",
        "policy_name",
        "policy_type",
        "applies_to",
        "target_agent_id",
        "target_agent_name",
        "target_tags",
        "rules",
        "enabled",
        "priority",
        "created_by",
        "created_at",
        "updated_at",
    }
    assert body["target_agent_id"] == str(job_app_agent.pk)
    assert body["target_agent_name"] == "agent_job_app_123"
    assert body["rules"] == RATE_LIMIT_SEED["rules"]
    assert (body["applies_to"], body["enabled"], body["priority"]) == ("agent", True, 50)
    assert (body["created_by"], body["target_tags"]) == ("alice", [])
    policy = Policy.objects.get(pk=body["policy_id"])
    assert (policy.target_agent, policy.created_by) == (job_app_agent, owner)


def test_target_agent_may_be_given_by_id(job_app_agent: Any, owner: Any, api_for: Any) -> None:
    payload = seed(RATE_LIMIT_SEED, target_agent_id=str(job_app_agent.pk))

    response = api_for(owner).post(URL, payload, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["target_agent_name"] == "agent_job_app_123"


def test_approval_seed_payload_is_accepted_and_stored_with_defaults(
    admin_user: Any, api_for: Any
) -> None:
    response = api_for(admin_user).post(URL, APPROVAL_SEED, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["applies_to"], body["target_agent_id"], body["priority"]) == ("all", None, 10)
    assert body["rules"] == {
        **APPROVAL_SEED["rules"],
        "required_approvals": 1,
        "on_expire": "reject",
        "on_reject": "tool_error",
        "allow_self_approval": False,
        "warn_before_minutes": None,
    }


def test_time_window_seed_dict_is_accepted_as_written(admin_user: Any, api_for: Any) -> None:
    response = api_for(admin_user).post(URL, TIME_WINDOW_SEED, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["target_tags"] == ["customer-facing"]
    assert (body["enabled"], body["priority"]) == (True, 100)  # the defaults
    assert body["rules"] == {**TIME_WINDOW_SEED["rules"], "blackout_dates": []}
    assert body["rules"]["allowed_hours"] == [9, 10, 11, 12, 13, 14, 15, 16, 17]


def test_cost_optimization_seed_dict_is_accepted_as_written(admin_user: Any, api_for: Any) -> None:
    response = api_for(admin_user).post(URL, COST_OPTIMIZATION_SEED, format="json")

    assert response.status_code == 201, response.content
    rules = response.json()["rules"]
    assert rules["route_by_complexity"] == COST_OPTIMIZATION_SEED["rules"]["route_by_complexity"]
    assert rules["complexity_detector"] == "token_estimate"
    assert rules["thresholds"] == {"simple_max_tokens": 500, "medium_max_tokens": 2000}


def test_create_writes_an_audit_event(job_app_agent: Any, owner: Any, api_for: Any) -> None:
    response = api_for(owner).post(
        URL, RATE_LIMIT_SEED, format="json", HTTP_X_REQUEST_ID="req-policy-1"
    )

    assert response.status_code == 201
    [event] = events(response.json()["policy_id"])
    assert (event.action, event.actor_type, event.request_id) == (
        "policy.created",
        "api_key",
        "req-policy-1",
    )
    assert event.agent_id == job_app_agent.pk
    assert event.after["rules"] == RATE_LIMIT_SEED["rules"]
    assert event.after["target_agent"] == str(job_app_agent.pk)


# --- bad input -----------------------------------------------------------------------------


def _rate_limit(**rules: Any) -> dict[str, Any]:
    return {"policy_name": "p", "policy_type": "rate_limit", "rules": rules}


def _time_window(**changes: Any) -> dict[str, Any]:
    rules = {**TIME_WINDOW_SEED["rules"], **changes}
    return {"policy_name": "p", "policy_type": "time_window", "rules": rules}


@pytest.mark.parametrize(
    ("payload", "field", "code"),
    [
        # unknown keys
        (_rate_limit(max_executions=5, window_minutes=60, burst=3), "rules.burst", "unknown_field"),
        (
            {**_rate_limit(max_executions=5, window_minutes=60), "colour": "red"},
            "colour",
            "unknown_field",
        ),
        (
            {
                "policy_name": "p",
                "policy_type": "model_routing",
                "rules": {
                    "route_by_complexity": {
                        "simple": {"provider": "openai", "model": "m", "temperature": 1}
                    }
                },
            },
            "rules.route_by_complexity.simple.temperature",
            "unknown_field",
        ),
        # wrong types
        (_rate_limit(max_executions="50", window_minutes=60), "rules.max_executions", "invalid"),
        (_rate_limit(max_executions=True, window_minutes=60), "rules.max_executions", "invalid"),
        (_time_window(allowed_hours="9-17"), "rules.allowed_hours", "not_a_list"),
        (
            {**_rate_limit(max_executions=5, window_minutes=60), "enabled": "yes"},
            "enabled",
            "invalid",
        ),
        (
            {**_rate_limit(max_executions=5, window_minutes=60), "priority": "high"},
            "priority",
            "invalid",
        ),
        (
            {"policy_name": "p", "policy_type": "rate_limit", "rules": [50, 60]},
            "rules",
            "not_object",
        ),
        (
            {"policy_name": "p", "policy_type": "speed_limit", "rules": {}},
            "policy_type",
            "invalid_choice",
        ),
        (
            {"policy_name": "p", "policy_type": "rate_limit", "applies_to": "team"},
            "applies_to",
            "invalid_choice",
        ),
        # hours outside 0 to 23
        (_time_window(allowed_hours=[9, 24]), "rules.allowed_hours[1]", "max_value"),
        (_time_window(allowed_hours=[-1, 9]), "rules.allowed_hours[0]", "min_value"),
        # unknown days
        (_time_window(allowed_days=["MON", "FUNDAY"]), "rules.allowed_days[1]", "invalid_choice"),
        (_time_window(allowed_days=["monday"]), "rules.allowed_days[0]", "invalid_choice"),
        # unknown time zones
        (_time_window(timezone="Mars/Olympus"), "rules.timezone", "invalid_timezone"),
        (_time_window(blackout_dates=["2026-02-30"]), "rules.blackout_dates", "invalid"),
        # negative limits
        (_rate_limit(max_executions=-5, window_minutes=60), "rules.max_executions", "min_value"),
        (_rate_limit(max_executions=5, window_minutes=0), "rules.window_minutes", "min_value"),
        (
            {"policy_name": "p", "policy_type": "cost_budget", "rules": {"max_cost_usd": -1}},
            "rules.max_cost_usd",
            "min_value",
        ),
        (
            {"policy_name": "p", "policy_type": "concurrency", "rules": {"max_running": -1}},
            "rules.max_running",
            "min_value",
        ),
        (
            {**_rate_limit(max_executions=5, window_minutes=60), "priority": -1},
            "priority",
            "min_value",
        ),
        # missing
        (_rate_limit(window_minutes=60), "rules.max_executions", "required"),
        ({"policy_type": "rate_limit", "rules": RATE_LIMIT_RULES}, "policy_name", "required"),
        (
            {
                "policy_name": "p",
                "policy_type": "approval_required",
                "rules": {"require_approval_for": ["send_email"], "approvers": ["not an address"]},
            },
            "rules.approvers",
            "invalid",
        ),
        (
            {
                "policy_name": "p",
                "policy_type": "content_safety",
                "rules": {"custom_patterns": [{"name": "x", "pattern": "("}]},
            },
            "rules.custom_patterns[0].pattern",
            "invalid",
        ),
    ],
)
def test_invalid_input_is_400_with_its_field_path(
    admin_user: Any, api_for: Any, payload: dict[str, Any], field: str, code: str
) -> None:
    response = api_for(admin_user).post(URL, payload, format="json")

    assert_error(response, 400, "validation_error")
    assert field_errors(response).get(field) == code, field_errors(response)
    assert not Policy.objects.exists()
    assert not AuditEvent.objects.filter(target_type="policy").exists()


def test_error_message_names_the_path(admin_user: Any, api_for: Any) -> None:
    response = api_for(admin_user).post(URL, _time_window(allowed_hours=[9, 24]), format="json")

    error = assert_error(response, 400, "validation_error")
    assert error["message"].startswith("rules.allowed_hours[1]: ")


def test_malformed_json_is_400_in_the_envelope(admin_user: Any, api_for: Any) -> None:
    response = api_for(admin_user).post(URL, b'{"policy_name": ', content_type="application/json")

    assert_error(response, 400, "malformed_request")


@pytest.mark.parametrize("ref", ["no-such-agent", "00000000-0000-0000-0000-000000000000"])
def test_unknown_target_agent_is_a_field_error(admin_user: Any, api_for: Any, ref: str) -> None:
    response = api_for(admin_user).post(
        URL, seed(RATE_LIMIT_SEED, target_agent_id=ref), format="json"
    )

    assert_error(response, 400, "validation_error")
    assert field_errors(response) == {"target_agent_id": "agent_not_found"}


def test_agent_scope_without_a_target_is_a_field_error(admin_user: Any, api_for: Any) -> None:
    payload = seed(RATE_LIMIT_SEED)
    del payload["target_agent_id"]

    response = api_for(admin_user).post(URL, payload, format="json")

    assert_error(response, 400, "validation_error")
    assert field_errors(response) == {"target_agent_id": "required"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"applies_to": "tag", "target_agent_id": None, "target_tags": []}, "target_tags"),
        ({"applies_to": "all", "target_agent_id": None, "target_tags": ["x"]}, "target_tags"),
        ({"applies_to": "all"}, "target_agent_id"),
    ],
)
def test_scope_and_targets_must_agree(
    job_app_agent: Any, admin_user: Any, api_for: Any, changes: dict[str, Any], field: str
) -> None:
    response = api_for(admin_user).post(URL, seed(RATE_LIMIT_SEED, **changes), format="json")

    assert_error(response, 400, "validation_error")
    assert list(field_errors(response)) == [field]
    assert not Policy.objects.exists()


def test_duplicate_name_is_409(job_app_agent: Any, owner: Any, api_for: Any) -> None:
    client = api_for(owner)
    assert client.post(URL, RATE_LIMIT_SEED, format="json").status_code == 201

    response = client.post(URL, RATE_LIMIT_SEED, format="json")

    error = assert_error(response, 409, "duplicate_policy_name")
    assert error["details"] == {"policy_name": "job-agent-rate-limit"}
    assert Policy.objects.count() == 1


# --- who may create ------------------------------------------------------------------------


def test_permitted_team_member_may_create_for_the_agent(
    job_app_agent: Any, other: Any, api_for: Any
) -> None:
    response = api_for(other).post(URL, RATE_LIMIT_SEED, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["created_by"] == "bob"


def test_outsider_cannot_target_an_agent_they_cannot_see(
    job_app_agent: Any, outsider: Any, api_for: Any
) -> None:
    response = api_for(outsider).post(URL, RATE_LIMIT_SEED, format="json")

    # the agent's existence is not disclosed: the same answer as for an unknown agent
    assert_error(response, 400, "validation_error")
    assert field_errors(response) == {"target_agent_id": "agent_not_found"}
    assert not Policy.objects.exists()


def test_operator_who_may_only_view_the_agent_cannot_target_it(
    their_agent: Any, outsider: Any, owner: Any, api_for: Any
) -> None:
    agent_access.agent_access_set(
        actor=Actor(user=outsider), agent=their_agent, perms=["view_agent"], user=owner
    )
    payload = seed(RATE_LIMIT_SEED, target_agent_id="email-summarizer")

    response = api_for(owner).post(URL, payload, format="json")

    assert_error(response, 403, "permission_denied")
    assert not Policy.objects.exists()


@pytest.mark.parametrize("payload", [APPROVAL_SEED, TIME_WINDOW_SEED, COST_OPTIMIZATION_SEED])
def test_operator_cannot_create_policies_for_all_agents_or_a_tag(
    agent: Any, owner: Any, api_for: Any, payload: dict[str, Any]
) -> None:
    response = api_for(owner).post(URL, payload, format="json")

    assert_error(response, 403, "permission_denied")
    assert not Policy.objects.exists()
    assert not AuditEvent.objects.filter(target_type="policy").exists()


@pytest.mark.parametrize("payload", [RATE_LIMIT_SEED, APPROVAL_SEED])
def test_viewer_cannot_create(
    job_app_agent: Any, viewer: Any, api_for: Any, payload: dict[str, Any]
) -> None:
    response = api_for(viewer).post(URL, payload, format="json")

    assert_error(response, 403, "permission_denied")
    assert not Policy.objects.exists()


def test_anonymous_is_401(api_for: Any) -> None:
    assert_error(api_for(None).get(URL), 401, "not_authenticated")
    assert_error(api_for(None).post(URL, APPROVAL_SEED, format="json"), 401, "not_authenticated")


# --- reading -------------------------------------------------------------------------------


@pytest.fixture
def policies(agent: Any, their_agent: Any, owner: Any, outsider: Any, admin_user: Any) -> dict:
    """Five policies: for all, for job-application-agent (tags recruiting, automation,
    high-volume), for its tag, for another tag (disabled), for charlie's agent."""
    make = factories.policy
    return {
        "all": make(admin_user, "everyone-limit", "rate_limit", RATE_LIMIT_RULES, priority=10),
        "agent": make(
            owner, "job-concurrency", "concurrency", {"max_running": 2}, agent=agent, priority=20
        ),
        "tag": make(
            admin_user,
            "recruiting-hours",
            "time_window",
            {"allowed_hours": list(range(9, 18))},
            tags=["recruiting"],
            priority=30,
        ),
        "other_tag": make(
            admin_user,
            "finance-safety",
            "content_safety",
            {},
            tags=["finance"],
            priority=40,
            enabled=False,
        ),
        "their_agent": make(
            outsider,
            "summarizer-approval",
            "approval_required",
            {"require_approval_for": ["send_email"]},
            agent=their_agent,
            priority=50,
        ),
    }


ALL_FIVE = [
    "everyone-limit",
    "job-concurrency",
    "recruiting-hours",
    "finance-safety",
    "summarizer-approval",
]


@pytest.mark.parametrize(
    ("who", "hidden"),
    [
        ("owner", "summarizer-approval"),
        ("other", "summarizer-approval"),
        ("viewer", "summarizer-approval"),
        ("outsider", "job-concurrency"),
        ("admin_user", None),
    ],
)
def test_each_role_reads_the_policies_for_all_for_tags_and_for_agents_it_may_see(
    policies: dict, api_for: Any, who: str, hidden: str | None, request: pytest.FixtureRequest
) -> None:
    client = api_for(request.getfixturevalue(who))

    listed = client.get(URL)

    assert names(listed) == [name for name in ALL_FIVE if name != hidden]  # evaluation order
    assert listed.json()["count"] == 5 - bool(hidden)
    for key, policy in policies.items():
        one = client.get(detail(policy))
        if policy.policy_name == hidden:
            assert_error(one, 404, "policy_not_found")
        else:
            assert one.status_code == 200, key
            target = policy.target_agent.name if policy.target_agent else None
            assert one.json()["target_agent_name"] == target


def test_a_hidden_agents_policy_is_not_named_anywhere_to_the_outsider(
    policies: dict, outsider: Any, api_for: Any
) -> None:
    client = api_for(outsider)

    for url in (URL, f"{URL}?type=concurrency", f"{URL}?scope=agent"):
        response = client.get(url)
        assert response.status_code == 200, response.content
        assert "job-application-agent" not in response.content.decode()
        assert "job-concurrency" not in response.content.decode()


def test_service_account_may_not_read_policies(policies: dict, owner: Any, api_for: Any) -> None:
    service = factories.user("svc", role="agent-service")
    client = api_for(service)

    assert_error(client.get(URL), 403, "permission_denied")
    assert_error(client.get(detail(policies["all"])), 403, "permission_denied")


def test_get_one(policies: dict, owner: Any, api_for: Any) -> None:
    response = api_for(owner).get(detail(policies["tag"]))

    assert response.status_code == 200
    body = response.json()
    assert body["policy_id"] == str(policies["tag"].pk)
    assert (body["applies_to"], body["target_tags"], body["target_agent_id"]) == (
        "tag",
        ["recruiting"],
        None,
    )
    assert body["rules"]["allowed_days"] == ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
    assert body["created_by"] == "root"


@pytest.mark.parametrize("ref", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
def test_get_unknown_is_404(owner: Any, api_for: Any, ref: str) -> None:
    assert_error(api_for(owner).get(f"{URL}/{ref}"), 404, "policy_not_found")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("type=time_window", ["recruiting-hours"]),
        ("scope=tag", ["recruiting-hours", "finance-safety"]),
        ("scope=agent", ["job-concurrency"]),  # not charlie's agent's: alice may not see it
        ("enabled=false", ["finance-safety"]),
        ("enabled=true&scope=all", ["everyone-limit"]),
        ("tag=finance", ["finance-safety"]),
        ("agent=job-application-agent", ["everyone-limit", "job-concurrency", "recruiting-hours"]),
        ("agent=job-application-agent&type=concurrency", ["job-concurrency"]),
    ],
)
def test_filters(policies: dict, owner: Any, api_for: Any, query: str, expected: list[str]) -> None:
    assert names(api_for(owner).get(f"{URL}?{query}")) == expected


def test_agent_filter_takes_an_id(policies: dict, agent: Any, owner: Any, api_for: Any) -> None:
    response = api_for(owner).get(URL, {"agent": str(agent.pk)})

    assert names(response) == ["everyone-limit", "job-concurrency", "recruiting-hours"]


def test_agent_filter_follows_the_agents_tags(
    policies: dict, agent: Any, owner: Any, api_for: Any
) -> None:
    agent_services.agent_update(actor=Actor(user=owner), agent=agent, data={"tags": ["finance"]})

    response = api_for(owner).get(URL, {"agent": "job-application-agent"})

    assert names(response) == ["everyone-limit", "job-concurrency", "finance-safety"]


@pytest.mark.parametrize("ref", ["no-such-agent", "email-summarizer"])
def test_agent_filter_with_an_agent_one_cannot_see_is_400(
    policies: dict, owner: Any, api_for: Any, ref: str
) -> None:
    response = api_for(owner).get(URL, {"agent": ref})

    assert_error(response, 400, "validation_error")
    assert "agent" in field_errors(response)


def test_bad_filter_value_is_400(policies: dict, owner: Any, api_for: Any) -> None:
    response = api_for(owner).get(URL, {"type": "speed_limit"})

    assert_error(response, 400, "validation_error")
    assert "type" in field_errors(response)


def test_pagination(policies: dict, admin_user: Any, api_for: Any) -> None:
    client = api_for(admin_user)

    first = client.get(URL, {"page_size": 2})
    last = client.get(URL, {"page_size": 2, "page": 3})
    beyond = client.get(URL, {"page_size": 2, "page": 4})

    assert first.json()["count"] == 5
    assert names(first) == ALL_FIVE[:2]
    assert "page=2" in first.json()["next"]
    assert first.json()["previous"] is None
    assert names(last) == ALL_FIVE[4:]
    assert last.json()["next"] is None
    assert_error(beyond, 404, "not_found")


# --- PATCH ---------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "other"])
def test_patch_by_owner_or_permitted(
    agent_policy: Policy, api_for: Any, who: str, request: pytest.FixtureRequest
) -> None:
    response = api_for(request.getfixturevalue(who)).patch(
        detail(agent_policy), {"priority": 5, "rules": {**RATE_LIMIT_RULES, "max_executions": 3}}
    )

    assert response.status_code == 200, response.content
    assert (response.json()["priority"], response.json()["rules"]["max_executions"]) == (5, 3)
    agent_policy.refresh_from_db()
    assert agent_policy.priority == 5
    event = events(agent_policy.pk)[-1]
    assert event.action == "policy.updated"
    assert (event.before["priority"], event.after["priority"]) == (20, 5)
    assert (event.before["rules"]["max_executions"], event.after["rules"]["max_executions"]) == (
        10,
        3,
    )


@pytest.mark.parametrize(
    ("who", "status", "code"),
    [("outsider", 404, "policy_not_found"), ("viewer", 403, "permission_denied")],
)
def test_patch_refused_to_outsider_and_viewer(
    agent_policy: Policy, api_for: Any, who: str, status: int, code: str, request: Any
) -> None:
    response = api_for(request.getfixturevalue(who)).patch(detail(agent_policy), {"priority": 5})

    assert_error(response, status, code)
    agent_policy.refresh_from_db()
    assert agent_policy.priority == 20
    assert [event.action for event in events(agent_policy.pk)] == ["policy.created"]


def test_operator_cannot_patch_a_policy_for_all_agents(
    agent: Any, admin_user: Any, owner: Any, api_for: Any
) -> None:
    policy = global_limit(admin_user)

    response = api_for(owner).patch(detail(policy), {"enabled": False})

    assert_error(response, 403, "permission_denied")
    policy.refresh_from_db()
    assert policy.enabled


def test_operator_cannot_widen_an_agent_policy_to_all_agents(
    agent_policy: Policy, owner: Any, api_for: Any
) -> None:
    response = api_for(owner).patch(detail(agent_policy), {"applies_to": "all"})

    assert_error(response, 403, "permission_denied")
    agent_policy.refresh_from_db()
    assert agent_policy.applies_to == "agent"


def test_admin_may_rescope_a_policy_to_a_tag(
    agent_policy: Policy, admin_user: Any, api_for: Any
) -> None:
    response = api_for(admin_user).patch(
        detail(agent_policy), {"applies_to": "tag", "target_tags": ["recruiting"]}
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["applies_to"], body["target_agent_id"], body["target_tags"]) == (
        "tag",
        None,
        ["recruiting"],
    )


@pytest.mark.parametrize(
    ("payload", "field", "code"),
    [
        (
            {"rules": {"max_executions": -1, "window_minutes": 60}},
            "rules.max_executions",
            "min_value",
        ),
        ({"rules": {"max_executions": 5}}, "rules.window_minutes", "required"),
        ({"policy_type": "time_window"}, "rules", "required"),
        (
            {"policy_type": "time_window", "rules": {"allowed_days": ["SOL"]}},
            "rules.allowed_days[0]",
            "invalid_choice",
        ),
        ({"target_agent_id": "email-summarizer"}, "target_agent_id", "agent_not_found"),
        ({"policy_id": "x"}, "policy_id", "unknown_field"),
        ({"enabled": 1}, "enabled", "invalid"),
    ],
)
def test_patch_invalid_is_400_and_changes_nothing(
    agent_policy: Policy,
    their_agent: Any,
    owner: Any,
    api_for: Any,
    payload: dict[str, Any],
    field: str,
    code: str,
) -> None:
    response = api_for(owner).patch(detail(agent_policy), payload)

    assert_error(response, 400, "validation_error")
    assert field_errors(response).get(field) == code, field_errors(response)
    agent_policy.refresh_from_db()
    assert (agent_policy.policy_type, agent_policy.rules) == ("rate_limit", RATE_LIMIT_RULES)


def test_patch_to_another_type_with_its_rules(
    agent_policy: Policy, owner: Any, api_for: Any
) -> None:
    response = api_for(owner).patch(
        detail(agent_policy), {"policy_type": "concurrency", "rules": {"max_running": 3}}
    )

    assert response.status_code == 200, response.content
    assert response.json()["rules"] == {"max_running": 3, "action_on_violation": "queue"}


def test_patch_to_an_existing_name_is_409(
    agent_policy: Policy, admin_user: Any, owner: Any, api_for: Any
) -> None:
    factories.policy(admin_user, "taken", "rate_limit", RATE_LIMIT_RULES)

    response = api_for(owner).patch(detail(agent_policy), {"policy_name": "taken"})

    assert_error(response, 409, "duplicate_policy_name")


def test_patch_to_one_agent_without_naming_it_is_400(admin_user: Any, api_for: Any) -> None:
    policy = global_limit(admin_user)

    response = api_for(admin_user).patch(detail(policy), {"applies_to": "agent"})

    assert_error(response, 400, "validation_error")
    assert field_errors(response) == {"target_agent_id": "required"}
    policy.refresh_from_db()
    assert policy.applies_to == "all"


def test_put_is_not_allowed(agent_policy: Policy, owner: Any, api_for: Any) -> None:
    response = api_for(owner).put(detail(agent_policy), {"priority": 1})

    assert_error(response, 405, "method_not_allowed")


# --- DELETE --------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "other"])
def test_delete(
    agent_policy: Policy, api_for: Any, who: str, request: pytest.FixtureRequest
) -> None:
    response = api_for(request.getfixturevalue(who)).delete(detail(agent_policy))

    assert response.status_code == 204
    assert not Policy.objects.filter(pk=agent_policy.pk).exists()
    event = events(agent_policy.pk)[-1]
    assert (event.action, event.before["policy_name"], event.after) == (
        "policy.deleted",
        "job-agent-limit",
        None,
    )


@pytest.mark.parametrize(
    ("who", "status", "code"),
    [("outsider", 404, "policy_not_found"), ("viewer", 403, "permission_denied")],
)
def test_delete_refused(
    agent_policy: Policy, api_for: Any, who: str, status: int, code: str, request: Any
) -> None:
    response = api_for(request.getfixturevalue(who)).delete(detail(agent_policy))

    assert_error(response, status, code)
    assert Policy.objects.filter(pk=agent_policy.pk).exists()


def test_operator_cannot_delete_a_policy_for_all_agents(
    agent: Any, admin_user: Any, owner: Any, api_for: Any
) -> None:
    policy = global_limit(admin_user)

    assert_error(api_for(owner).delete(detail(policy)), 403, "permission_denied")
    assert api_for(admin_user).delete(detail(policy)).status_code == 204
    assert not Policy.objects.exists()


def test_delete_unknown_is_404(owner: Any, api_for: Any) -> None:
    response = api_for(owner).delete(f"{URL}/00000000-0000-0000-0000-000000000000")

    assert_error(response, 404, "policy_not_found")


# --- enable / disable ----------------------------------------------------------------------


def test_disable_then_enable(agent_policy: Policy, other: Any, api_for: Any) -> None:
    client = api_for(other)

    disabled = client.post(f"{detail(agent_policy)}/disable")
    again = client.post(f"{detail(agent_policy)}/disable")
    enabled = client.post(f"{detail(agent_policy)}/enable")

    assert disabled.status_code == again.status_code == enabled.status_code == 200
    assert (disabled.json()["enabled"], enabled.json()["enabled"]) == (False, True)
    agent_policy.refresh_from_db()
    assert agent_policy.enabled
    updates = [e for e in events(agent_policy.pk) if e.action == "policy.updated"]
    # disabling twice changes (and audits) once
    assert [(e.before["enabled"], e.after["enabled"]) for e in updates] == [
        (True, False),
        (False, True),
    ]


@pytest.mark.parametrize(
    ("who", "status", "code"),
    [("outsider", 404, "policy_not_found"), ("viewer", 403, "permission_denied")],
)
def test_disable_refused(
    agent_policy: Policy, api_for: Any, who: str, status: int, code: str, request: Any
) -> None:
    response = api_for(request.getfixturevalue(who)).post(f"{detail(agent_policy)}/disable")

    assert_error(response, status, code)
    agent_policy.refresh_from_db()
    assert agent_policy.enabled


def test_admin_may_disable_a_policy_for_all_agents(
    agent: Any, admin_user: Any, owner: Any, api_for: Any
) -> None:
    policy = global_limit(admin_user)

    assert_error(api_for(owner).post(f"{detail(policy)}/disable"), 403, "permission_denied")
    response = api_for(admin_user).post(f"{detail(policy)}/disable")

    assert response.status_code == 200
    assert response.json()["enabled"] is False


def test_schema_lists_the_policy_endpoints(viewer: Any, api_for: Any) -> None:
    response = api_for(viewer).get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/v1/policies", "/api/v1/policies/{id}", "/api/v1/policies/evaluate"} <= set(paths)
    assert {"/api/v1/policies/{id}/enable", "/api/v1/policies/{id}/disable"} <= set(paths)
