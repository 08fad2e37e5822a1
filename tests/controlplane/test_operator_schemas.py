"""What operators write and the server runs: a JSON Schema never makes the server fetch a
URL (SSRF through ``$ref``), and a regular expression never takes exponential time (ReDoS),
on every entry that accepts one."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from agents.models import AgentVersion
from controlplane.jsonschemas import SchemaProblem, check_schema, validator
from controlplane.patterns import UnsafePattern, compile_pattern
from tests import factories
from tests.api import assert_error, field_errors

pytestmark = pytest.mark.django_db

AGENTS = "/api/v1/agents"
TRIGGER = "/api/v1/executions/trigger"
EVALUATE = "/api/v1/policies/evaluate"
# Exponential on a backtracking engine: 2**64 paths before "no match".
EVIL_INPUT = "a" * 64 + "!"


def finishes(call: Callable[[], Any], seconds: float = 60) -> Any:
    """``call()``'s result; fails (rather than hangs the suite) when it never finishes, as a
    backtracking engine does on ``EVIL_INPUT``."""
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert result, f"still matching after {seconds} s: catastrophic backtracking"
    return result[0]


@pytest.fixture
def schema_host(httpserver: HTTPServer) -> HTTPServer:
    """A real HTTP server on loopback serving a schema: a request to it is the SSRF."""
    httpserver.expect_request("/schema.json").respond_with_json({"type": "string"})
    return httpserver


@pytest.mark.parametrize(
    ("field", "schema", "path"),
    [
        ("input_schema", {"$ref": "{url}"}, "$ref"),
        (
            "input_schema",
            {"type": "object", "properties": {"k": {"$ref": "{url}"}}},
            "properties/k/$ref",
        ),
        ("output_schema", {"items": [{"$dynamicRef": "{url}"}]}, "items/0/$dynamicRef"),
        ("input_schema", {"$schema": "{url}", "type": "object"}, "$schema"),
        ("input_schema", {"$defs": {"a": {"$ref": "other.json#/x"}}}, "$defs/a/$ref"),
    ],
)
def test_a_schema_that_points_outside_itself_is_400_naming_the_path_and_nothing_is_fetched(
    field: str, schema: dict[str, Any], path: str, schema_host: HTTPServer, owner: Any, api_for: Any
) -> None:
    url = schema_host.url_for("/schema.json")
    hostile = _with_url(schema, url)
    payload = factories.seed_payload(name="ssrf-agent", **{field: hostile})

    response = api_for(owner).post(AGENTS, payload, format="json")

    error = assert_error(response, 400, "validation_error")
    assert field in field_errors(response)
    assert f"(at {path})" in error["message"]
    assert schema_host.log == []  # nothing fetched
    assert not AgentVersion.objects.filter(agent__name="ssrf-agent").exists()


def test_a_stored_remote_ref_is_an_input_error_at_trigger_and_nothing_is_fetched(
    schema_host: HTTPServer, owner: Any, api_for: Any
) -> None:
    """A schema stored before the checks (or by hand) still never reaches out."""
    runner = factories.runnable_agent(owner, team="team-a")
    version = runner.versions.get(stage="production")
    config = {**version.config, "input_schema": {"$ref": schema_host.url_for("/schema.json")}}
    AgentVersion.objects.filter(pk=version.pk).update(config=config, config_hash=uuid.uuid4().hex)

    response = api_for(owner).post(TRIGGER, {"agent": "runner", "input": {}}, format="json")

    error = assert_error(response, 400, "invalid_input")
    assert "does not resolve" in error["message"]
    assert field_errors(response) == {"input": "$ref"}
    assert schema_host.log == []


def test_local_references_and_known_dialects_still_work() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {"email": {"type": "string", "format": "email"}},
        "type": "object",
        "properties": {"to": {"$ref": "#/$defs/email"}},
    }

    check_schema(schema)

    assert [e.message for e in validator(schema).iter_errors({"to": "not-an-address"})] == [
        "'not-an-address' is not a 'email'"
    ]
    assert validator(schema).iter_errors({"to": "a@b.co"}) == []
    check_schema({"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"})


def test_an_input_schema_pattern_runs_in_linear_time_at_trigger(owner: Any, api_for: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"k": {"type": "string", "pattern": "^(a+)+$"}},
        "patternProperties": {"^(b+)+$": {"type": "string"}},
        "additionalProperties": False,
    }
    factories.runnable_agent(owner, team="team-a", input_schema=schema)
    client = api_for(owner)

    errors = finishes(lambda: validator(schema).iter_errors({"k": EVIL_INPUT, "b" * 64 + "!": 1}))
    response = client.post(TRIGGER, {"agent": "runner", "input": {"k": EVIL_INPUT}}, format="json")
    extra = client.post(TRIGGER, {"agent": "runner", "input": {"b" * 64 + "!": "x"}}, format="json")
    accepted = client.post(TRIGGER, {"agent": "runner", "input": {"k": "aaaa"}}, format="json")

    assert sorted(error.validator for error in errors) == ["additionalProperties", "pattern"]
    assert_error(response, 400, "invalid_input")
    assert field_errors(response) == {"input.k": "pattern"}
    assert field_errors(extra) == {"input": "additionalProperties"}
    assert accepted.status_code == 202, accepted.content


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"(a)\1", "backreferences"),
        (r"(?=secret)\w+", "lookaround"),
        (r"(?<!x)y", "lookaround"),
        ("a{1000}{1000}", "Not a regular expression"),
        ("(", "Not a regular expression"),
    ],
)
def test_a_pattern_the_safe_engine_cannot_run_is_refused_where_it_is_written(
    pattern: str, why: str, admin_user: Any, api_for: Any
) -> None:
    client = api_for(admin_user)
    payload = factories.seed_payload(
        name="pattern-agent",
        input_schema={
            "type": "object",
            "properties": {"k": {"type": "string", "pattern": pattern}},
        },
    )

    response = client.post(AGENTS, payload, format="json")

    error = assert_error(response, 400, "validation_error")
    assert "input_schema" in field_errors(response)
    assert "properties/k/pattern" in str(error) and why in str(error)

    response = client.post(
        "/api/v1/policies",
        {
            "policy_name": "custom",
            "policy_type": "content_safety",
            "rules": {"custom_patterns": [{"name": "p", "pattern": pattern}]},
        },
        format="json",
    )

    assert_error(response, 400, "validation_error")
    assert field_errors(response) == {"rules.custom_patterns[0].pattern": "invalid"}
    with pytest.raises(UnsafePattern, match=why):
        compile_pattern(pattern)


def test_a_content_safety_pattern_runs_in_linear_time_on_evaluate(
    admin_user: Any, owner: Any, api_for: Any
) -> None:
    runner = factories.runnable_agent(owner, team="team-a")
    factories.policy(
        admin_user,
        "custom",
        "content_safety",
        {
            "pii": "off",
            "prompt_injection": "off",
            "custom_patterns": [{"name": "evil", "pattern": "(x+x+)+y", "action": "block"}],
        },
        agent=runner,
    )
    client = api_for(owner)
    evil = compile_pattern("(x+x+)+y")

    assert finishes(lambda: evil.search("x" * 64)) is None
    miss = client.post(EVALUATE, {"agent": "runner", "input": {"text": "x" * 64}}, format="json")
    hit = client.post(EVALUATE, {"agent": "runner", "input": {"text": "xxy"}}, format="json")

    assert miss.status_code == 200, miss.content
    assert miss.json()["outcome"] == "allow"
    assert hit.json()["outcome"] == "deny"


def test_unevaluated_properties_beside_pattern_properties_is_refused() -> None:
    """jsonschema evaluates that pair with Python's backtracking ``re``."""
    with pytest.raises(SchemaProblem, match="unevaluatedProperties"):
        check_schema({"patternProperties": {"^a": {}}, "unevaluatedProperties": False})


def _with_url(node: Any, url: str) -> Any:
    if isinstance(node, dict):
        return {key: _with_url(value, url) for key, value in node.items()}
    if isinstance(node, list):
        return [_with_url(value, url) for value in node]
    return url if node == "{url}" else node
