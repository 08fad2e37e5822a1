"""The agents API: seed 000's payloads, the owner / permitted / outsider trio on every
endpoint, the lifecycle, and every kind of bad input answered in the error envelope."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings

from agents.models import Agent, AgentVersion
from controlplane.models import AuditEvent
from tests import factories
from tests.api import assert_error, field_errors

pytestmark = pytest.mark.django_db

URL = "/api/v1/agents"


# --- create -------------------------------------------------------------------------------


def test_create_accepts_seed_payload_exactly_as_written(owner: Any, api_for: Any) -> None:
    response = api_for(owner).post(URL, factories.seed_payload(), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "job-application-agent"
    assert body["status"] == "draft"
    assert body["owner_email"] == "eng-team@company.com"
    assert body["owner"] == "alice"
    assert body["tags"] == ["automation", "high-volume", "recruiting"]
    assert body["production_version"] is None
    [version] = body["versions"]
    assert version["version"] == "1.2.0"
    assert version["stage"] == "draft"
    config = version["config"]
    assert config["runtime"] == "n8n"
    assert config["n8n_workflow_id"] == "wf_abc123"
    assert config["trigger"]["type"] == "webhook"
    assert config["capabilities"] == factories.SEED_AGENT["capabilities"]
    assert config["data_scope"] == factories.SEED_AGENT["data_scope"]
    assert config["allowed_destinations"] == factories.SEED_AGENT["allowed_destinations"]
    assert len(version["config_hash"]) == 64
    assert Agent.objects.get(name="job-application-agent").versions.count() == 1


def test_create_with_existing_name_and_new_version_adds_a_draft(
    agent: Any, owner: Any, api_for: Any
) -> None:
    response = api_for(owner).post(URL, factories.seed_payload(version="1.3.0"), format="json")

    assert response.status_code == 201
    assert sorted(v["version"] for v in response.json()["versions"]) == ["1.2.0", "1.3.0"]
    assert Agent.objects.count() == 1


def test_create_duplicate_name_and_version_is_409(agent: Any, owner: Any, api_for: Any) -> None:
    response = api_for(owner).post(URL, factories.seed_payload(), format="json")

    error = assert_error(response, 409, "duplicate_agent_version")
    assert error["details"] == {"name": "job-application-agent", "version": "1.2.0"}
    assert AgentVersion.objects.count() == 1


def test_create_existing_name_by_outsider_is_409_without_touching_it(
    agent: Any, outsider: Any, api_for: Any
) -> None:
    response = api_for(outsider).post(URL, factories.seed_payload(version="9.0.0"), format="json")

    assert_error(response, 409, "duplicate_agent_name")
    assert not AgentVersion.objects.filter(version="9.0.0").exists()


def test_viewer_cannot_create(viewer: Any, api_for: Any) -> None:
    response = api_for(viewer).post(URL, factories.seed_payload(), format="json")

    assert_error(response, 403, "permission_denied")
    assert not Agent.objects.exists()


def test_create_llm_agent_with_tools(owner: Any, api_for: Any) -> None:
    response = api_for(owner).post(URL, factories.LLM_AGENT, format="json")

    assert response.status_code == 201, response.content
    config = response.json()["versions"][0]["config"]
    assert config["llm"]["model"] == "simulated-1"
    assert config["tools"] == [
        {
            "name": "send_email",
            "config": {"allowed_domains": ["company.com"], "allowed_recipients": []},
        }
    ]


def test_create_writes_audit_events(owner: Any, api_for: Any) -> None:
    response = api_for(owner).post(
        URL, factories.seed_payload(), format="json", HTTP_X_REQUEST_ID="req-123"
    )

    assert response.status_code == 201
    actions = list(
        AuditEvent.objects.order_by("id").values_list("action", "request_id", "actor_type")
    )
    assert ("agent.created", "req-123", "api_key") in actions
    assert ("agent_version.created", "req-123", "api_key") in actions


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"capabilities": {"read": "yes"}}, "capabilities.read", "invalid"),
        ({"capabilities": {"admin": True}}, "capabilities.admin", "unknown_field"),
        ({"allowed_destinations": {"fax": True}}, "allowed_destinations.fax", "unknown_field"),
        ({"tags": ["x" * 51]}, "tags[0]", "max_length"),
        ({"tags": "recruiting"}, "tags", "not_a_list"),
        ({"version": "1.2"}, "version", "invalid_version"),
        ({"name": "Job Agent!"}, "name", "invalid_name"),
        ({"name": 42}, "name", "invalid"),
        ({"trigger_type": "sometimes"}, "trigger_type", "invalid_choice"),
        ({"input_schema": {"type": "objekt"}}, "input_schema", "invalid_schema"),
        (
            {"output_schema": {"properties": {"a": {"minimum": "zero"}}}},
            "output_schema",
            "invalid_schema",
        ),
        ({"input_schema": ["not", "an", "object"]}, "input_schema", "not_object"),
        ({"owner_email": "not-an-email"}, "owner_email", "invalid"),
        ({"colour": "blue"}, "colour", "unknown_field"),
        ({"description": "nul\x00byte"}, "description", "null_characters_not_allowed"),
        ({"input_schema": {"title": "nul\x00"}}, "input_schema", "nul"),
        ({"timeout_seconds": 10**30}, "timeout_seconds", "max_value"),
        ({"trigger": {"type": "cron", "schedule": "61 * * * *"}}, "trigger.schedule", "invalid"),
        (
            {"trigger": {"type": "cron", "schedule": "0 * * * *", "timezone": "Mars/Olympus"}},
            "trigger.timezone",
            "invalid_timezone",
        ),
    ],
)
def test_invalid_field_is_400_with_its_path(
    owner: Any, api_for: Any, change: dict[str, Any], field: str, code: str
) -> None:
    payload = factories.seed_payload()
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(payload.get(key), dict):
            payload[key] = {**payload[key], **value}
        else:
            payload[key] = value

    response = api_for(owner).post(URL, payload, format="json")

    assert_error(response, 400, "validation_error")
    assert field_errors(response).get(field) == code, field_errors(response)
    assert not Agent.objects.exists()


def test_tool_without_its_capability_or_destination_is_400(owner: Any, api_for: Any) -> None:
    payload = {
        **factories.LLM_AGENT,
        "capabilities": {"read": True},
        "allowed_destinations": {"slack": True},
    }

    response = api_for(owner).post(URL, payload, format="json")

    error = assert_error(response, 400, "validation_error")
    messages = [item["message"] for item in error["details"]["validationErrors"]]
    assert any("capabilities.notify" in message for message in messages)
    assert any("allowed_destinations.email" in message for message in messages)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"name": "x",', "application/json"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b'{"name": NaN}', "application/json"),
        (b"\xff\xfe{}", "application/json"),
    ],
    ids=["truncated", "nested-too-deep", "nan", "not-utf8"],
)
def test_malformed_body_is_400(owner: Any, api_for: Any, body: bytes, content_type: str) -> None:
    response = api_for(owner).generic("POST", URL, body, content_type=content_type)

    assert_error(response, 400, "malformed_request")


def test_body_that_is_not_an_object_is_400(owner: Any, api_for: Any) -> None:
    response = api_for(owner).post(URL, [factories.seed_payload()], format="json")

    assert_error(response, 400, "validation_error")


def test_wrong_content_type_is_415(owner: Any, api_for: Any) -> None:
    response = api_for(owner).generic("POST", URL, "name=x", content_type="text/plain")

    assert_error(response, 415, "unsupported_media_type")


@override_settings(API_MAX_BODY_BYTES=2048)
def test_body_over_the_cap_is_413(owner: Any, api_for: Any) -> None:
    payload = factories.seed_payload(description="x" * 4096)

    response = api_for(owner).post(URL, payload, format="json")

    error = assert_error(response, 413, "payload_too_large")
    assert error["details"]["limitBytes"] == 2048
    assert not Agent.objects.exists()


def test_unauthenticated_is_401_with_challenge(db: Any, api_for: Any) -> None:
    response = api_for(None).get(URL)

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Api-Key")


def test_unknown_api_path_is_404_envelope(owner: Any, api_for: Any) -> None:
    response = api_for(owner).get("/api/v1/no-such-thing")

    assert_error(response, 404, "not_found")


def test_put_is_405_envelope(agent: Any, owner: Any, api_for: Any) -> None:
    response = api_for(owner).put(f"{URL}/{agent.pk}", factories.seed_payload(), format="json")

    assert_error(response, 405, "method_not_allowed")


# --- read: the trio -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "visible"), [("owner", True), ("other", True), ("outsider", False)]
)
def test_list_shows_only_agents_the_user_may_see(
    request: Any, agent: Any, api_for: Any, who: str, visible: bool
) -> None:
    response = api_for(request.getfixturevalue(who)).get(URL)

    assert response.status_code == 200
    names = [item["name"] for item in response.json()["results"]]
    assert names == (["job-application-agent"] if visible else [])


@pytest.mark.parametrize(("who", "status"), [("owner", 200), ("other", 200), ("outsider", 404)])
@pytest.mark.parametrize("by", ["id", "name"])
def test_get_by_id_or_name(
    request: Any, agent: Any, api_for: Any, who: str, status: int, by: str
) -> None:
    ref = agent.pk if by == "id" else agent.name

    response = api_for(request.getfixturevalue(who)).get(f"{URL}/{ref}")

    assert response.status_code == status
    if status == 200:
        assert response.json()["agent_id"] == str(agent.pk)
        assert [v["version"] for v in response.json()["versions"]] == ["1.2.0"]
    else:
        assert_error(response, 404, "agent_not_found")


def test_admin_sees_every_agent(agent: Any, admin_user: Any, api_for: Any) -> None:
    response = api_for(admin_user).get(URL)

    assert [item["name"] for item in response.json()["results"]] == ["job-application-agent"]


@pytest.mark.parametrize(("who", "status"), [("owner", 200), ("other", 200), ("outsider", 404)])
def test_versions_and_diff_follow_visibility(
    request: Any, agent: Any, owner: Any, api_for: Any, who: str, status: int
) -> None:
    factories.to_production(agent, owner)
    api_for(owner).post(
        f"{URL}/{agent.pk}/versions",
        {
            "version": "1.3.0",
            "clone_from": "1.2.0",
            "llm": {"provider": "simulated"},
            "runtime": "llm",
        },
        format="json",
    )
    client = api_for(request.getfixturevalue(who))

    versions = client.get(f"{URL}/{agent.pk}/versions")
    diff = client.get(f"{URL}/{agent.name}/diff", {"from": "1.2.0", "to": "1.3.0"})

    assert versions.status_code == status
    assert diff.status_code == status
    if status == 200:
        assert [v["version"] for v in versions.json()["results"]] == ["1.3.0", "1.2.0"]
        changes = {change["field"]: change for change in diff.json()["changes"]}
        assert changes["runtime"] == {
            "field": "runtime",
            "change": "changed",
            "from": "n8n",
            "to": "llm",
        }
        assert changes["llm"]["change"] == "changed"
        assert diff.json()["identical"] is False


# --- filters and pagination ---------------------------------------------------------------


def test_list_filters_and_search(owner: Any, api_for: Any) -> None:
    client = api_for(owner)
    client.post(URL, factories.seed_payload(), format="json")
    client.post(URL, factories.LLM_AGENT, format="json")
    client.post(URL, factories.seed_payload(name="old-agent", tags=["legacy"]), format="json")
    client.delete(f"{URL}/old-agent")

    def names(**params: Any) -> list[str]:
        response = client.get(URL, params)
        assert response.status_code == 200, response.content
        return [item["name"] for item in response.json()["results"]]

    assert names() == ["email-summarizer", "job-application-agent"]
    assert names(tag="recruiting") == ["job-application-agent"]
    assert names(q="summar") == ["email-summarizer"]
    assert names(owner="ops@company.com") == ["email-summarizer"]
    assert names(owner="alice") == [
        "email-summarizer",
        "job-application-agent",
    ]
    assert names(status="archived") == ["old-agent"]
    assert names(status="draft,archived") == [
        "email-summarizer",
        "job-application-agent",
        "old-agent",
    ]


def test_invalid_filter_value_is_400(owner: Any, api_for: Any) -> None:
    response = api_for(owner).get(URL, {"status": "sleeping"})

    assert_error(response, 400, "validation_error")


def test_pagination(owner: Any, api_for: Any) -> None:
    client = api_for(owner)
    for index in range(3):
        client.post(URL, factories.seed_payload(name=f"agent-{index}"), format="json")

    first = client.get(URL, {"page_size": 2}).json()
    second = client.get(URL, {"page_size": 2, "page": 2}).json()

    assert first["count"] == 3
    assert [item["name"] for item in first["results"]] == ["agent-0", "agent-1"]
    assert [item["name"] for item in second["results"]] == ["agent-2"]
    assert second["next"] is None
    assert_error(client.get(URL, {"page": 9}), 404, "not_found")


# --- change: PATCH, lifecycle -------------------------------------------------------------


@pytest.mark.parametrize(("who", "status"), [("owner", 200), ("other", 200), ("outsider", 404)])
def test_patch_edits_the_draft(
    request: Any, agent: Any, api_for: Any, who: str, status: int
) -> None:
    response = api_for(request.getfixturevalue(who)).patch(
        f"{URL}/{agent.pk}",
        {
            "description": "Now with cover letters",
            "capabilities": {"execute": True},
            "changelog": "tweak",
        },
        format="json",
    )

    assert response.status_code == status, response.content
    version = agent.versions.get()
    if status == 200:
        assert response.json()["description"] == "Now with cover letters"
        assert version.config["capabilities"] == {
            "read": True,
            "write": True,
            "notify": True,
            "execute": True,
        }
        assert version.changelog == "tweak"
    else:
        assert version.config["capabilities"]["execute"] is False


def test_viewer_cannot_patch(agent: Any, viewer: Any, api_for: Any) -> None:
    response = api_for(viewer).patch(f"{URL}/{agent.pk}", {"description": "x"}, format="json")

    assert_error(response, 403, "permission_denied")


def test_patch_a_version_that_left_draft_is_409(agent: Any, owner: Any, api_for: Any) -> None:
    factories.to_production(agent, owner)

    response = api_for(owner).patch(
        f"{URL}/{agent.pk}", {"capabilities": {"execute": True}}, format="json"
    )
    direct = api_for(owner).patch(
        f"{URL}/{agent.pk}/versions/1.2.0", {"capabilities": {"execute": True}}, format="json"
    )

    assert_error(response, 409, "version_immutable")
    error = assert_error(direct, 409, "version_immutable")
    assert error["details"] == {"version": "1.2.0", "stage": "production"}
    assert agent.versions.get().config["capabilities"]["execute"] is False


def test_patch_invalid_merged_config_is_400_and_changes_nothing(
    agent: Any, owner: Any, api_for: Any
) -> None:
    before = agent.versions.get().config

    response = api_for(owner).patch(
        f"{URL}/{agent.pk}", {"description": "new", "trigger_type": "cron"}, format="json"
    )

    assert_error(response, 400, "validation_error")
    agent.refresh_from_db()
    assert agent.description == "Automated job application submission system"
    assert agent.versions.get().config == before


def test_patch_cannot_rename(agent: Any, owner: Any, api_for: Any) -> None:
    response = api_for(owner).patch(f"{URL}/{agent.pk}", {"name": "other-name"}, format="json")

    assert field_errors(response) == {"name": "unknown_field"}


@pytest.mark.parametrize(("who", "status"), [("owner", 204), ("other", 403), ("outsider", 404)])
def test_delete_is_a_soft_delete(
    request: Any, agent: Any, owner: Any, api_for: Any, who: str, status: int
) -> None:
    response = api_for(request.getfixturevalue(who)).delete(f"{URL}/{agent.pk}")

    assert response.status_code == status
    agent.refresh_from_db()
    if status == 204:
        assert agent.status == "archived"
        assert agent.archived_at is not None
        listed = api_for(owner).get(URL).json()["results"]
        assert listed == []
        assert api_for(owner).get(f"{URL}/{agent.pk}").json()["status"] == "archived"
        assert AuditEvent.objects.filter(action="agent.archived", agent_id=agent.pk).exists()
    else:
        assert agent.status == "draft"


@pytest.mark.parametrize(("who", "status"), [("owner", 200), ("other", 200), ("outsider", 404)])
def test_promote_activate_pause_rollback(
    request: Any, agent: Any, api_for: Any, who: str, status: int
) -> None:
    client = api_for(request.getfixturevalue(who))

    staged = client.post(f"{URL}/{agent.pk}/promote")
    assert staged.status_code == status
    if status != 200:
        agent.refresh_from_db()
        assert agent.staging_version is None
        for action in ("activate", "pause", "rollback", "deprecate"):
            assert client.post(f"{URL}/{agent.pk}/{action}").status_code == 404
        return
    assert staged.json()["staging_version"] == "1.2.0"
    produced = client.post(f"{URL}/{agent.pk}/promote", {"version": "1.2.0"}, format="json")
    assert produced.json()["production_version"] == "1.2.0"
    assert produced.json()["staging_version"] is None
    assert client.post(f"{URL}/{agent.pk}/activate").json()["status"] == "active"
    assert client.post(f"{URL}/{agent.pk}/pause").json()["status"] == "paused"
    assert_error(client.post(f"{URL}/{agent.pk}/rollback"), 409, "no_previous_production")

    client.post(
        f"{URL}/{agent.pk}/versions", {"version": "1.3.0", "clone_from": "1.2.0"}, format="json"
    )
    client.post(f"{URL}/{agent.pk}/promote", {"version": "1.3.0"}, format="json")
    client.post(f"{URL}/{agent.pk}/promote", {"version": "1.3.0"}, format="json")
    rolled = client.post(f"{URL}/{agent.pk}/rollback")

    assert rolled.status_code == 200
    assert rolled.json()["production_version"] == "1.2.0"
    stages = {v["version"]: v["stage"] for v in rolled.json()["versions"]}
    assert stages == {"1.2.0": "production", "1.3.0": "retired"}


def test_viewer_cannot_promote(agent: Any, viewer: Any, api_for: Any) -> None:
    assert_error(api_for(viewer).post(f"{URL}/{agent.pk}/promote"), 403, "permission_denied")


def test_activate_without_production_version_is_409(agent: Any, owner: Any, api_for: Any) -> None:
    error = assert_error(
        api_for(owner).post(f"{URL}/{agent.pk}/activate"), 409, "no_production_version"
    )

    assert "promote" in error["message"]


def test_illegal_transition_is_409_with_current_state(agent: Any, owner: Any, api_for: Any) -> None:
    error = assert_error(api_for(owner).post(f"{URL}/{agent.pk}/pause"), 409, "invalid_transition")

    assert error["details"] == {"status": "draft", "action": "pause"}


def test_promote_retired_version_is_409(agent: Any, owner: Any, api_for: Any) -> None:
    client = api_for(owner)
    factories.to_production(agent, owner)
    client.post(
        f"{URL}/{agent.pk}/versions", {"version": "1.3.0", "clone_from": "1.2.0"}, format="json"
    )
    factories.to_production(agent, owner, "1.3.0")

    error = assert_error(
        client.post(f"{URL}/{agent.pk}/promote", {"version": "1.2.0"}, format="json"),
        409,
        "invalid_transition",
    )
    assert "rollback" in error["message"]


def test_promote_unknown_version_is_404(agent: Any, owner: Any, api_for: Any) -> None:
    response = api_for(owner).post(f"{URL}/{agent.pk}/promote", {"version": "7.7.7"}, format="json")

    assert_error(response, 404, "version_not_found")


# --- versions -----------------------------------------------------------------------------


def test_new_version_from_scratch(agent: Any, owner: Any, api_for: Any) -> None:
    response = api_for(owner).post(
        f"{URL}/{agent.pk}/versions",
        {
            "version": "2.0.0",
            "runtime": "llm",
            "llm": {"provider": "anthropic"},
            "changelog": "LLM runtime",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["stage"] == "draft"
    assert body["changelog"] == "LLM runtime"
    assert body["config"]["llm"]["model"] == "claude-haiku-4-5"
    assert body["config"]["capabilities"] == {
        "read": False,
        "write": False,
        "notify": False,
        "execute": False,
    }


def test_new_version_cloned_keeps_config_and_applies_changes(
    agent: Any, owner: Any, api_for: Any
) -> None:
    response = api_for(owner).post(
        f"{URL}/{agent.pk}/versions",
        {"version": "1.2.1", "clone_from": "1.2.0", "tags_typo": 1},
        format="json",
    )
    assert field_errors(response) == {"tags_typo": "unknown_field"}

    response = api_for(owner).post(
        f"{URL}/{agent.pk}/versions",
        {"version": "1.2.1", "clone_from": "1.2.0", "data_scope": {"apis": ["workday_api"]}},
        format="json",
    )

    assert response.status_code == 201, response.content
    config = response.json()["config"]
    original = agent.versions.get(version="1.2.0").config
    assert config["data_scope"] == {**original["data_scope"], "apis": ["workday_api"]}
    assert config["capabilities"] == original["capabilities"]
    assert response.json()["changelog"] == "Cloned from 1.2.0."


def test_new_version_duplicate_is_409(agent: Any, owner: Any, api_for: Any) -> None:
    response = api_for(owner).post(
        f"{URL}/{agent.pk}/versions", {"version": "1.2.0", "clone_from": "1.2.0"}, format="json"
    )

    assert_error(response, 409, "duplicate_agent_version")


def test_new_version_needs_a_version(agent: Any, owner: Any, api_for: Any) -> None:
    response = api_for(owner).post(
        f"{URL}/{agent.pk}/versions", {"clone_from": "1.2.0"}, format="json"
    )

    assert field_errors(response) == {"version": "invalid"}


@pytest.mark.parametrize(("who", "status"), [("owner", 201), ("other", 201), ("outsider", 404)])
def test_new_version_trio(request: Any, agent: Any, api_for: Any, who: str, status: int) -> None:
    response = api_for(request.getfixturevalue(who)).post(
        f"{URL}/{agent.pk}/versions", {"version": "1.2.1", "clone_from": "1.2.0"}, format="json"
    )

    assert response.status_code == status


def test_get_one_version_and_diff_errors(agent: Any, owner: Any, api_for: Any) -> None:
    client = api_for(owner)

    assert client.get(f"{URL}/{agent.pk}/versions/1.2.0").json()["stage"] == "draft"
    assert_error(client.get(f"{URL}/{agent.pk}/versions/3.0.0"), 404, "version_not_found")
    assert_error(client.get(f"{URL}/{agent.pk}/diff", {"from": "1.2.0"}), 400, "validation_error")
    assert_error(
        client.get(f"{URL}/{agent.pk}/diff", {"from": "1.2.0", "to": "9.9.9"}),
        404,
        "version_not_found",
    )
    same = client.get(f"{URL}/{agent.pk}/diff", {"from": "1.2.0", "to": "1.2.0"}).json()
    assert same == {"from": "1.2.0", "to": "1.2.0", "identical": True, "changes": []}


def test_session_auth_requires_csrf(agent: Any, owner: Any) -> None:
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner)

    assert client.get(f"{URL}/{agent.pk}").status_code == 200
    assert_error(client.post(f"{URL}/{agent.pk}/promote"), 403, "permission_denied")


def test_schema_and_docs_are_served(db: Any, client: Any, owner: Any) -> None:
    client.force_login(owner)  # both are for signed-in users only
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/api/v1/agents/{ref}/promote" in paths
    assert "/api/v1/agents/{ref}/diff" in paths
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    assert b"cdn" not in docs.content.lower()
