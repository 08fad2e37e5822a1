"""The console side of runs: the Run form on the agent page (generated from the input
schema), the webhook secret, recent runs, the executions list and one execution's page.

Every page and POST is tried by the trio (alice owns the agent, bob is permitted through
team-a, charlie is an outsider) and by vera, a viewer of team-a who may read but not run.
HTMX answers are asked for with ``HX-Request: true``, as htmx itself does.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

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

from agents import services as agent_services
from agents.models import Agent
from agents.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, agent_webhook_secret
from controlplane.access import Actor
from controlplane.models import AuditEvent
from executions import services
from executions.forms import RunForm, input_form_class
from executions.models import Execution
from executions.runtime import run_execution
from executions.trigger import TriggerRequest, execution_trigger
from tests import factories

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
NAME = "runner"
DETAIL = f"/agents/{NAME}/"
RUN = f"/agents/{NAME}/run"
ROTATE = f"/agents/{NAME}/webhook-secret"

# One property of every kind the form generator knows.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {
            "type": "string",
            "title": "Full name",
            "description": "As on the passport.",
            "default": "Ada Lovelace",
        },
        "email": {"type": "string", "format": "email", "title": "E-mail"},
        "website": {"type": "string", "format": "uri"},
        "when": {"type": "string", "format": "date-time", "default": "2030-01-02T03:04:00Z"},
        "letter": {"type": "string", "maxLength": 2000},
        "code": {"type": "string", "maxLength": 12},
        "priority": {"type": "string", "enum": ["low", "normal", "high"], "default": "normal"},
        "count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        "score": {"type": "number", "minimum": 0, "maximum": 1.5},
        "urgent": {"type": "boolean", "default": True},
        "tags": {"type": "array", "items": {"type": "string"}, "default": ["a", "b"]},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "matrix": {"type": "array", "items": {"type": "array"}},
    },
    "required": ["name", "email", "count"],
    "additionalProperties": False,
}

VALID_POST = {
    "input.name": "Grace Hopper",
    "input.email": "grace@company.com",
    "input.website": "https://example.com/grace",
    "input.when": "2031-05-06T07:08",
    "input.letter": "Dear committee,\nI apply.",
    "input.code": "G-1",
    "input.priority": "high",
    "input.count": "4",
    "input.score": "0.75",
    "input.tags": "one\n\n two \n",
    "input.address": '{"city": "Arlington"}',
    "input.matrix": "[[1, 2], [3]]",
    # input.urgent is unchecked: a browser sends nothing for it
}

VALID_INPUT = {
    "name": "Grace Hopper",
    "email": "grace@company.com",
    "website": "https://example.com/grace",
    "when": "2031-05-06T07:08:00Z",
    "letter": "Dear committee,\nI apply.",
    "code": "G-1",
    "priority": "high",
    "count": 4,
    "score": 0.75,
    "urgent": False,
    "tags": ["one", "two"],
    "address": {"city": "Arlington"},
    "matrix": [[1, 2], [3]],
}


# --- helpers ------------------------------------------------------------------------------


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def html(response: Any) -> str:
    return response.content.decode()


class Controls(HTMLParser):
    """The form controls on a page: {name: {"tag", attrs..., "options", "text"}} and the
    label text of each id."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: dict[str, dict[str, Any]] = {}
        self.labels: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None
        self._label: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("input", "select", "textarea") and found.get("name"):
            name = str(found["name"])
            self.controls[name] = {"tag": tag, **found, "options": [], "text": ""}
            self._select = name if tag == "select" else None
            self._textarea = name if tag == "textarea" else None
        elif tag == "option" and self._select:
            self.controls[self._select]["options"].append(found)
        elif tag == "label":
            self._label = str(found.get("for"))
            self.labels[self._label] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "label":
            self._label = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.controls[self._textarea]["text"] += data
        if self._label:
            self.labels[self._label] += data


def controls(response: Any) -> Controls:
    parser = Controls()
    parser.feed(html(response))
    return parser


def field_block(response: Any, name: str) -> str:
    """The rendered block of one generated field (label, control, help, errors)."""
    match = re.search(
        rf'<div class="field[^"]*" data-property="{re.escape(name)}">(.*?)\n    </div>',
        html(response),
        re.S,
    )
    assert match is not None, f"no field {name}"
    return match.group(1)


def field_errors(response: Any, name: str) -> list[str]:
    return re.findall(r"<li>(.*?)</li>", field_block(response, name), re.S)


def run_section(response: Any) -> str:
    match = re.search(r'<section id="run".*?</section>', html(response), re.S)
    return match.group(0) if match else ""


def start(agent: Agent, user: Any, value: Any = None, **kwargs: Any) -> Execution:
    kwargs.setdefault("source", "api")
    return execution_trigger(
        TriggerRequest(actor=Actor(user=user), agent=agent, input=value or {}, **kwargs)
    ).execution


def run(execution: Execution) -> Execution:
    run_execution(execution_id=str(execution.pk), attempt=execution.attempt, worker="w@test")
    execution.refresh_from_db()
    return execution


def a_valid_input() -> dict[str, Any]:
    return {"name": "A", "email": "a@company.com", "count": 1}


@pytest.fixture
def runner(owner: Any, other: Any) -> Agent:
    """Active, production 1.0.0 on the simulated provider, with SCHEMA as input schema,
    shared with team-a."""
    return factories.runnable_agent(owner, name=NAME, team="team-a", input_schema=SCHEMA)


@pytest.fixture
def service_user(db: Any) -> Any:
    """sam, an agent-service account of team-a: may run the agent, may not change it."""
    return factories.user("sam", role="agent-service", teams=["team-a"])


def staged(agent: Agent, owner: Any, schema: dict[str, Any]) -> Agent:
    """Version 1.1.0 with ``schema`` as its input schema, promoted to staging."""
    actor = Actor(user=owner)
    agent_services.agent_version_create(
        actor=actor,
        agent=agent,
        version="1.1.0",
        clone_from="1.0.0",
        change={"input_schema": schema},
    )
    agent_services.agent_version_promote(actor=actor, agent=agent, version="1.1.0")
    agent.refresh_from_db()
    return agent


TICKET_SCHEMA = {
    "type": "object",
    "properties": {"ticket": {"type": "integer", "title": "Ticket number"}},
    "required": ["ticket"],
}


# --- the form generator -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "tag", "attrs"),
    [
        ("input.name", "input", {"type": "text", "value": "Ada Lovelace"}),
        ("input.email", "input", {"type": "email"}),
        ("input.website", "input", {"type": "url"}),
        ("input.when", "input", {"type": "datetime-local", "value": "2030-01-02T03:04"}),
        ("input.letter", "textarea", {"maxlength": "2000"}),
        ("input.code", "input", {"type": "text", "maxlength": "12"}),
        ("input.priority", "select", {}),
        ("input.count", "input", {"type": "number", "min": "1", "max": "10", "value": "3"}),
        ("input.score", "input", {"type": "number", "min": "0", "max": "1.5", "step": "any"}),
        ("input.urgent", "input", {"type": "checkbox", "checked": None}),
        ("input.tags", "textarea", {}),
        ("input.address", "textarea", {"class": "code"}),
        ("input.matrix", "textarea", {"class": "code"}),
    ],
)
def test_run_form_has_the_right_control_for_each_schema_type(
    client: Client, owner: Any, runner: Agent, name: str, tag: str, attrs: dict[str, Any]
) -> None:
    response = login(client, owner).get(DETAIL)

    control = controls(response).controls[name]
    assert control["tag"] == tag
    for attr, value in attrs.items():
        assert attr in control, f"{name} has no {attr}"
        assert control[attr] == value
    # nothing stops the browser from submitting: the raw JSON may be used instead
    assert "required" not in control


def test_run_form_labels_help_required_marks_and_defaults(
    client: Client, owner: Any, runner: Agent
) -> None:
    response = login(client, owner).get(DETAIL)
    found = controls(response)

    assert found.labels["id_input.name"].strip() == "Full name *"
    assert found.labels["id_input.email"].strip() == "E-mail *"
    assert found.labels["id_input.count"].strip() == "count *"
    assert found.labels["id_input.website"].strip() == "website"  # no title: the property
    assert "As on the passport." in field_block(response, "input.name")
    assert "In UTC." in field_block(response, "input.when")
    assert "One per line." in field_block(response, "input.tags")
    assert "JSON." in field_block(response, "input.address")
    priority = found.controls["input.priority"]["options"]
    assert [option["value"] for option in priority] == ["", "low", "normal", "high"]
    assert [option for option in priority if "selected" in option] == [
        {"value": "normal", "selected": None}
    ]
    assert found.controls["input.tags"]["text"].strip() == "a\nb"
    assert found.controls["raw_input"]["tag"] == "textarea"
    assertContains(response, "Advanced: raw JSON input")
    assertContains(response, '<details class="raw-input">')  # closed while not used


def test_generated_form_turns_the_posted_text_into_the_json_input() -> None:
    form = input_form_class(SCHEMA)(VALID_POST)

    assert form.is_valid(), form.errors
    assert form.to_input() == VALID_INPUT


def test_generated_form_leaves_out_empty_optional_fields() -> None:
    form = input_form_class(SCHEMA)(
        {
            "input.name": "A",
            "input.email": "a@company.com",
            "input.count": "2",
            "input.urgent": "on",
        }
    )

    assert form.is_valid(), form.errors
    assert form.to_input() == {"name": "A", "email": "a@company.com", "count": 2, "urgent": True}


@pytest.mark.parametrize(
    ("schema", "posted", "expected"),
    [
        ({"type": "number"}, "3", 3),
        ({"type": "number"}, "2.5", 2.5),
        ({"type": "integer", "enum": [1, 2, 3]}, "2", 2),
        ({"enum": ["a", 1, True, None]}, "true", True),
        ({"const": "fixed"}, "fixed", "fixed"),
        ({"type": ["string", "null"]}, "text", "text"),
        ({"type": "string", "format": "date"}, "2030-12-31", "2030-12-31"),
        ({"type": "array", "items": {"type": "string"}}, "x\r\ny", ["x", "y"]),
        ({"type": "array", "items": {"type": "integer"}}, "[1, 2]", [1, 2]),
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, "7", 7),
        ({}, '"anything"', "anything"),
    ],
)
def test_generated_form_converts_each_kind(
    schema: dict[str, Any], posted: str, expected: Any
) -> None:
    form_class = input_form_class({"type": "object", "properties": {"value": schema}})
    form = form_class({"input.value": posted})

    assert form.is_valid(), form.errors
    assert form.to_input() == {"value": expected}
    assert type(form.to_input()["value"]) is type(expected)


@pytest.mark.parametrize(
    ("posted", "field", "message"),
    [
        ({"input.count": "many"}, "input.count", "Enter a whole number."),
        ({"input.score": "lots"}, "input.score", "Enter a number."),
        ({"input.name": ""}, "input.name", "This field is required."),
        ({"input.address": '{"city": '}, "input.address", "Not valid JSON"),
        ({"input.priority": "urgent"}, "input.priority", "Select a valid choice."),
        ({"input.when": "tomorrow"}, "input.when", "Enter a valid date/time."),
    ],
)
def test_generated_form_refuses_text_it_cannot_read(
    posted: dict[str, str], field: str, message: str
) -> None:
    form = input_form_class(SCHEMA)({**VALID_POST, **posted})

    assert not form.is_valid()
    assert list(form.errors) == [field]
    assert message in form.errors[field][0]


def test_property_names_that_are_not_identifiers_get_safe_field_names() -> None:
    form_class = input_form_class(
        {"type": "object", "properties": {"first name": {"type": "string"}, "ok": {}}}
    )
    form = form_class({"input.0": "Ada", "input.ok": "1"})

    assert list(form.fields) == ["input.0", "input.ok"]
    assert form.fields["input.0"].label == "first name"
    assert form.is_valid(), form.errors
    assert form.to_input() == {"first name": "Ada", "ok": 1}
    assert form.field_for_path("input.first name") == "input.0"


@pytest.mark.parametrize("schema", [{"type": "object"}, None, {"type": "object", "properties": 3}])
def test_schema_without_properties_makes_a_form_without_fields(schema: Any) -> None:
    form = input_form_class(schema)({})

    assert list(form.fields) == []
    assert form.is_valid()
    assert form.to_input() == {}


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("{", "Not valid JSON"),
        ('{"a": "\\u0000"}', "Must not contain NUL characters."),
        ("[" * 40 + "]" * 40, "Must not nest objects and arrays deeper than"),
    ],
)
def test_raw_input_must_be_clean_json(raw: str, error: str) -> None:
    form = RunForm({"raw_input": raw})

    assert not form.is_valid()
    assert error in form.errors["raw_input"][0]


# --- the Run section: who sees it ----------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status", "sees_form"),
    [
        ("owner", 200, True),
        ("other", 200, True),
        ("outsider", 404, False),
        ("viewer", 200, False),
        ("admin_user", 200, True),
    ],
)
def test_run_form_is_shown_to_who_may_run_the_agent(
    request: Any, client: Client, runner: Agent, who: str, status: int, sees_form: bool
) -> None:
    response = login(client, request.getfixturevalue(who)).get(DETAIL)

    assert response.status_code == status
    assert ('id="run-form"' in html(response)) is sees_form
    assert ('action="/agents/runner/run"' in html(response)) is sees_form
    if status == 200 and not sees_form:
        assert run_section(response) == ""
        assertNotContains(response, "input.email")


def test_run_section_says_when_there_is_nothing_to_run(
    client: Client, owner: Any, agent: Agent
) -> None:
    response = login(client, owner).get("/agents/job-application-agent/")

    assertContains(response, "No production version yet: promote a version to production")
    assertNotContains(response, 'id="run-form"')


def test_run_section_warns_that_a_paused_agent_does_not_run(
    client: Client, owner: Any, runner: Agent
) -> None:
    agent_services.agent_transition(actor=Actor(user=owner), agent=runner, action="pause")

    response = login(client, owner).get(DETAIL)

    assertContains(response, "The agent is paused: only an active agent runs")
    assertContains(response, 'id="run-form"')


def test_archived_agent_has_no_run_section(client: Client, owner: Any, runner: Agent) -> None:
    agent_services.agent_transition(actor=Actor(user=owner), agent=runner, action="archive")

    response = login(client, owner).get(DETAIL)

    assert response.status_code == 200
    assert run_section(response) == ""


# --- the Run section: submitting ---------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "other", "admin_user"])
def test_run_form_starts_a_run_and_goes_to_its_page(
    request: Any, client: Client, runner: Agent, who: str
) -> None:
    user = request.getfixturevalue(who)
    login(client, user)

    response = client.post(RUN, {**VALID_POST, "version": "1.0.0", "raw_input": ""})

    execution = Execution.objects.get()
    assertRedirects(response, f"/executions/{execution.pk}/", fetch_redirect_response=False)
    assert execution.input == VALID_INPUT
    assert execution.trigger_source == "manual"
    assert execution.trigger_user == user.username
    assert execution.triggered_by == user
    assert execution.status == "queued"
    assert execution.agent_version.version == "1.0.0"
    assert execution.is_staging is False
    page = client.get(response["Location"])
    assertContains(page, "Run of runner 1.0.0 started.")
    assertContains(page, "&quot;grace@company.com&quot;")


def test_run_form_with_htmx_redirects_the_browser(
    client: Client, owner: Any, runner: Agent
) -> None:
    response = login(client, owner).post(RUN, VALID_POST, headers=HTMX)

    execution = Execution.objects.get()
    assert response.status_code == 204
    assert response["HX-Redirect"] == f"/executions/{execution.pk}/"


def test_run_form_enqueues_the_run_after_commit(
    client: Client,
    owner: Any,
    runner: Agent,
    django_capture_on_commit_callbacks: Any,
) -> None:
    login(client, owner)

    with django_capture_on_commit_callbacks() as callbacks:
        client.post(RUN, VALID_POST)

    execution = Execution.objects.get()
    # the doorbell for the worker: the execution's id and attempt, rung after commit
    enqueued = [getattr(callback, "args", None) for callback in callbacks]
    assert enqueued.count((str(execution.pk), 1)) == 1
    assert AuditEvent.objects.filter(
        action="execution.created", target_id=str(execution.pk), actor_label="alice"
    ).exists()


def test_viewer_forged_run_is_refused(client: Client, viewer: Any, runner: Agent) -> None:
    login(client, viewer)
    events = AuditEvent.objects.count()

    page = client.post(RUN, VALID_POST)
    partial = client.post(RUN, VALID_POST, headers=HTMX)

    assert page.status_code == 403
    assert partial.status_code == 403
    assert Execution.objects.count() == 0
    assert AuditEvent.objects.count() == events


def test_outsider_cannot_run_or_learn_the_agent_exists(
    client: Client, outsider: Any, runner: Agent
) -> None:
    login(client, outsider)

    assert client.post(RUN, VALID_POST).status_code == 404
    assert client.get(RUN, {"version": "1.0.0"}, headers=HTMX).status_code == 404
    assert Execution.objects.count() == 0


def test_anonymous_run_goes_to_login(client: Client, runner: Agent) -> None:
    response = client.post(RUN, VALID_POST)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert Execution.objects.count() == 0


def test_run_refuses_without_the_csrf_token(owner: Any, runner: Agent) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    response = client.post(RUN, VALID_POST, headers=HTMX)

    assert response.status_code == 403
    assert Execution.objects.count() == 0


@pytest.mark.parametrize("htmx", [False, True])
def test_schema_errors_from_the_service_are_shown_on_their_fields(
    client: Client, owner: Any, runner: Agent, htmx: bool
) -> None:
    posted = {
        **VALID_POST,
        "input.email": "not-an-email",
        "input.count": "11",
        "input.score": "2",
        "input.address": '{"town": "Arlington"}',
    }

    response = login(client, owner).post(RUN, posted, headers=HTMX if htmx else {})

    assert response.status_code == 400
    assertTemplateUsed(response, "executions/_agent_run.html")
    if htmx:
        assertTemplateNotUsed(response, "base.html")
    else:
        assertTemplateUsed(response, "agents/detail.html")
    assert field_errors(response, "input.email") == [
        "&#x27;not-an-email&#x27; is not a &#x27;email&#x27;"
    ]
    assert field_errors(response, "input.count") == ["11 is greater than the maximum of 10"]
    assert field_errors(response, "input.score") == ["2 is greater than the maximum of 1.5"]
    assert field_errors(response, "input.address") == ["&#x27;city&#x27; is a required property"]
    assert field_errors(response, "input.name") == []
    # what was typed stays in the form
    found = controls(response).controls
    assert found["input.email"]["value"] == "not-an-email"
    assert found["input.address"]["text"].strip() == '{"town": "Arlington"}'
    assert Execution.objects.count() == 0


def test_errors_deeper_in_a_json_field_name_their_path(
    client: Client, owner: Any, runner: Agent
) -> None:
    posted = {**VALID_POST, "input.matrix": '[[1], "two"]'}

    response = login(client, owner).post(RUN, posted)

    assert field_errors(response, "input.matrix") == [
        "[1]: &#x27;two&#x27; is not of type &#x27;array&#x27;"
    ]


def test_an_error_about_the_whole_input_is_shown_above_the_fields(
    client: Client, owner: Any
) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "minProperties": 2,
    }
    factories.runnable_agent(owner, name="pair", input_schema=schema)

    response = login(client, owner).post("/agents/pair/run", {"input.a": "x"})

    assert response.status_code == 400
    errors = re.search(
        r'<div class="msg msg-error" role="alert"><div>(.*?)</div></div>', run_section(response)
    )
    assert errors is not None
    assert (
        errors.group(1) == "input: {&#x27;a&#x27;: &#x27;x&#x27;} does not have enough properties"
    )
    assert field_errors(response, "input.a") == []
    assert Execution.objects.count() == 0


def test_fields_the_form_cannot_read_are_errors_before_the_service_is_asked(
    client: Client, owner: Any, runner: Agent
) -> None:
    login(client, owner)
    events = AuditEvent.objects.count()

    response = client.post(RUN, {**VALID_POST, "input.count": "x", "input.name": ""})

    assert response.status_code == 400
    assert field_errors(response, "input.count") == ["Enter a whole number."]
    assert field_errors(response, "input.name") == ["This field is required."]
    assert Execution.objects.count() == 0
    assert AuditEvent.objects.count() == events


def test_raw_json_input_is_used_instead_of_the_fields(
    client: Client, owner: Any, runner: Agent
) -> None:
    raw = {"name": "Raw", "email": "raw@company.com", "count": 9, "tags": []}

    response = login(client, owner).post(
        RUN, {"input.count": "not a number", "raw_input": json.dumps(raw)}
    )

    assert response.status_code == 302
    assert Execution.objects.get().input == raw


@pytest.mark.parametrize(
    ("raw", "errors"),
    [
        ('{"name": ', ["Not valid JSON: Expecting value: line 1 column 10 (char 9)"]),
        (
            json.dumps({"name": "x", "email": "x@company.com", "count": 0}),
            ["input.count: 0 is less than the minimum of 1"],
        ),
        ("[1, 2]", ["input: [1, 2] is not of type &#x27;object&#x27;"]),
    ],
)
def test_raw_json_errors_are_shown_on_the_raw_field_with_their_path(
    client: Client, owner: Any, runner: Agent, raw: str, errors: list[str]
) -> None:
    response = login(client, owner).post(RUN, {**VALID_POST, "raw_input": raw}, headers=HTMX)

    assert response.status_code == 400
    block = re.search(r'<details class="raw-input" open>(.*?)</details>', html(response), re.S)
    assert block is not None  # opened, since it holds the error
    assert re.findall(r"<li>(.*?)</li>", block.group(1)) == errors
    assert controls(response).controls["raw_input"]["text"].strip() == raw.strip()
    assert Execution.objects.count() == 0


def test_agent_without_input_fields_runs_from_the_raw_json(client: Client, owner: Any) -> None:
    factories.runnable_agent(owner, name="free")
    login(client, owner)

    page = client.get("/agents/free/")
    empty = client.post("/agents/free/run", {"raw_input": ""})
    given = client.post("/agents/free/run", {"raw_input": '{"any": ["thing"]}'})

    assertContains(page, '<details class="raw-input" open>')
    assertContains(page, "Input (JSON)")
    assert empty.status_code == given.status_code == 302
    assert [e.input for e in Execution.objects.order_by("created_at")] == [
        {},
        {"any": ["thing"]},
    ]


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("pause", "Agent &#x27;runner&#x27; is paused: only an active agent runs."),
        ("deprecate", "Agent &#x27;runner&#x27; is deprecated: only an active agent runs."),
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_not_runnable_agent_shows_the_409_in_the_run_section(
    client: Client, owner: Any, runner: Agent, action: str, message: str, htmx: bool
) -> None:
    agent_services.agent_transition(actor=Actor(user=owner), agent=runner, action=action)

    response = login(client, owner).post(RUN, VALID_POST, headers=HTMX if htmx else {})

    assert response.status_code == 409
    assert f'<p class="msg msg-error" role="alert">{message}</p>' in run_section(response)
    assert Execution.objects.count() == 0


def test_get_of_the_run_url_without_htmx_goes_to_the_agent_page(
    client: Client, owner: Any, runner: Agent
) -> None:
    login(client, owner)

    plain = client.get(RUN)
    staging = client.get(RUN, {"version": "1.1.0"})

    assertRedirects(plain, f"{DETAIL}#run", fetch_redirect_response=False)
    assertRedirects(staging, f"{DETAIL}?run_version=1.1.0#run", fetch_redirect_response=False)


# --- staging runs ---------------------------------------------------------------------------


def test_changers_may_pick_the_staging_version_and_get_its_form(
    client: Client, owner: Any, runner: Agent
) -> None:
    staged(runner, owner, TICKET_SCHEMA)
    login(client, owner)

    page = client.get(DETAIL)
    swapped = client.get(RUN, {"version": "1.1.0"}, headers=HTMX)
    linked = client.get(DETAIL, {"run_version": "1.1.0"})

    versions = controls(page).controls["version"]["options"]
    assert versions == [
        {"value": "1.0.0", "selected": None},
        {"value": "1.1.0"},
    ]
    assert "input.email" in controls(page).controls
    assertTemplateUsed(swapped, "executions/_agent_run.html")
    assertTemplateNotUsed(swapped, "base.html")
    for response in (swapped, linked):
        found = controls(response)
        assert "input.ticket" in found.controls
        assert "input.email" not in found.controls
        assert found.labels["id_input.ticket"].strip() == "Ticket number *"
        assert {"value": "1.1.0", "selected": None} in found.controls["version"]["options"]


def test_staging_run_is_marked(client: Client, owner: Any, runner: Agent) -> None:
    staged(runner, owner, TICKET_SCHEMA)
    login(client, owner)

    response = client.post(RUN, {"version": "1.1.0", "input.ticket": "42"})

    execution = Execution.objects.get()
    assertRedirects(response, f"/executions/{execution.pk}/", fetch_redirect_response=False)
    assert execution.is_staging is True
    assert execution.agent_version.version == "1.1.0"
    assert execution.input == {"ticket": 42}
    page = client.get(response["Location"])
    assertContains(page, "Run of runner 1.1.0 started (staging run).")
    assertContains(page, '<span class="badge stage-staging">staging run</span>')


def test_staging_form_errors_come_back_with_the_staging_form(
    client: Client, owner: Any, runner: Agent
) -> None:
    """Without JavaScript the fields stay those of production when the select is changed:
    the answer is the chosen version's form, with what it misses."""
    staged(runner, owner, TICKET_SCHEMA)

    response = login(client, owner).post(RUN, {**VALID_POST, "version": "1.1.0"})

    assert response.status_code == 400
    assert field_errors(response, "input.ticket") == ["This field is required."]
    assert Execution.objects.count() == 0


def test_a_user_who_may_run_but_not_change_gets_no_staging_choice(
    client: Client, owner: Any, service_user: Any, runner: Agent
) -> None:
    staged(runner, owner, TICKET_SCHEMA)
    login(client, service_user)

    page = client.get(DETAIL)
    forged = client.post(RUN, {"version": "1.1.0", "raw_input": '{"ticket": 1}'})
    allowed = client.post(RUN, VALID_POST)

    found = controls(page).controls
    assert found["version"]["type"] == "hidden"
    assert found["version"]["value"] == "1.0.0"
    assert forged.status_code == 403
    assert "Running the staging version needs the right to change the agent." in run_section(forged)
    assert allowed.status_code == 302
    assert list(Execution.objects.values_list("is_staging", flat=True)) == [False]


def test_a_version_that_is_neither_production_nor_staging_is_refused(
    client: Client, owner: Any, runner: Agent
) -> None:
    response = login(client, owner).post(RUN, {**VALID_POST, "version": "0.0.1"})

    assert response.status_code == 409
    assert "is neither the production nor the staging version" in run_section(response)
    assert Execution.objects.count() == 0


def test_panel_actions_also_refresh_the_run_section(
    client: Client, owner: Any, agent: Agent
) -> None:
    login(client, owner)
    url = "/agents/job-application-agent/actions/promote"

    staging = client.post(url, {"version": "1.2.0"}, headers=HTMX)
    production = client.post(url, {"version": "1.2.0"}, headers=HTMX)

    assert '<section id="run" class="card" aria-labelledby="run-title" hx-swap-oob="true">' in (
        html(staging)
    )
    assert 'id="run-form"' in html(staging)  # the owner may run the staging version
    assert "Version 1.2.0 (production)" in run_section(production)
    assert "The agent is draft: only an active agent runs" in run_section(production)


def test_panel_actions_of_a_viewer_swap_no_run_section(
    client: Client, owner: Any, viewer: Any, runner: Agent
) -> None:
    response = login(client, viewer).post(f"/agents/{NAME}/actions/pause", headers=HTMX)

    assert response.status_code == 403
    assert run_section(response) == ""


# --- the webhook secret ------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "other"])
def test_rotating_shows_the_new_secret_once_with_the_instructions(
    request: Any, client: Client, runner: Agent, who: str
) -> None:
    login(client, request.getfixturevalue(who))

    response = client.post(ROTATE)
    again = client.get(DETAIL)
    runner.refresh_from_db()

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = re.search(
        r'<pre class="code secret" id="webhook-secret">([^<]+)</pre>', html(response)
    )
    assert secret is not None
    assert agent_webhook_secret(runner) == secret.group(1)
    assertContains(response, f"http://testserver/api/v1/hooks/agents/{runner.pk}")
    assertContains(response, TIMESTAMP_HEADER)
    assertContains(response, SIGNATURE_HEADER)
    assertContains(
        response, "sha256=&lt;hex HMAC-SHA256(secret, timestamp + &#x27;.&#x27; + raw body)&gt;"
    )
    # shown once: the page shows it no more, and says a secret is set
    assert secret.group(1) not in html(again)
    assertContains(again, "A secret is set; it was shown once")
    assert "no-store" not in again.get("Cache-Control", "")
    assert (
        AuditEvent.objects.filter(action="agent.webhook_secret_rotated", agent_id=runner.pk).count()
        == 1
    )


def test_rotating_with_htmx_swaps_the_webhook_section(
    client: Client, owner: Any, runner: Agent
) -> None:
    login(client, owner)
    first = client.post(ROTATE, headers=HTMX)
    runner.refresh_from_db()
    old = agent_webhook_secret(runner)

    second = client.post(ROTATE, headers=HTMX)
    runner.refresh_from_db()

    for response in (first, second):
        assertTemplateUsed(response, "agents/_webhook.html")
        assertTemplateNotUsed(response, "base.html")
        assert html(response).lstrip().startswith('<section id="webhook"')
        assert "no-store" in response["Cache-Control"]
    new = agent_webhook_secret(runner)
    assert new != old
    assertContains(second, new)
    assertNotContains(second, old)


def test_webhook_section_before_any_secret(client: Client, owner: Any, runner: Agent) -> None:
    response = login(client, owner).get(DETAIL)

    assertContains(response, "No secret yet: the webhook refuses every call")
    assertContains(response, "Create webhook secret")
    assertContains(
        response, f'<code id="webhook-url">http://testserver/api/v1/hooks/agents/{runner.pk}</code>'
    )


def test_viewer_sees_the_webhook_url_but_no_button_and_a_forged_rotation_is_refused(
    client: Client, viewer: Any, runner: Agent
) -> None:
    login(client, viewer)

    page = client.get(DETAIL)
    partial = client.post(ROTATE, headers=HTMX)
    plain = client.post(ROTATE, follow=True)

    assertContains(page, f"/api/v1/hooks/agents/{runner.pk}")
    assertNotContains(page, 'data-webhook="rotate"')
    assertNotContains(page, f'action="{ROTATE}"')
    assert partial.status_code == 403
    assertContains(partial, "You do not have permission", status_code=403)
    assertNotContains(partial, 'id="webhook-secret"', status_code=403)
    assertRedirects(plain, DETAIL)
    assertContains(plain, '<li class="msg msg-error">You do not have permission')
    runner.refresh_from_db()
    assert agent_webhook_secret(runner) is None
    assert not AuditEvent.objects.filter(action="agent.webhook_secret_rotated").exists()


def test_outsider_cannot_rotate(client: Client, outsider: Any, runner: Agent) -> None:
    response = login(client, outsider).post(ROTATE, headers=HTMX)

    assert response.status_code == 404
    assert agent_webhook_secret(runner) is None


def test_rotation_refuses_get(client: Client, owner: Any, runner: Agent) -> None:
    assert login(client, owner).get(ROTATE).status_code == 405
    assert agent_webhook_secret(runner) is None


# --- recent runs on the agent page ----------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "other", "viewer"])
def test_agent_page_lists_the_last_ten_runs_newest_first(
    request: Any, client: Client, owner: Any, runner: Agent, who: str
) -> None:
    executions = [start(runner, owner, a_valid_input()) for _ in range(12)]

    response = login(client, request.getfixturevalue(who)).get(DETAIL)

    rows = re.findall(r'<tr data-execution="([0-9a-f-]+)">', html(response))
    assert rows == [str(e.pk) for e in reversed(executions)][:10]
    assertContains(response, f'href="/executions/?agent={NAME}"')
    assertContains(response, '<span class="badge exec-queued">Queued</span>', count=10)


def test_agent_page_without_runs_says_so(client: Client, owner: Any, runner: Agent) -> None:
    response = login(client, owner).get(DETAIL)

    assertContains(response, "Recent runs")
    assertContains(response, "No runs yet.")


# --- executions list --------------------------------------------------------------------------


def listed(response: Any) -> list[str]:
    return re.findall(r'<tr data-execution="([0-9a-f-]+)">', html(response))


@pytest.mark.parametrize(
    ("who", "sees"),
    [("owner", True), ("other", True), ("outsider", False), ("viewer", True), ("admin_user", True)],
)
def test_list_shows_only_runs_of_agents_the_user_may_see(
    request: Any, client: Client, owner: Any, runner: Agent, who: str, sees: bool
) -> None:
    execution = start(runner, owner, a_valid_input())

    response = login(client, request.getfixturevalue(who)).get("/executions/")

    assert response.status_code == 200
    assert listed(response) == ([str(execution.pk)] if sees else [])


@pytest.fixture
def history(owner: Any, runner: Agent) -> dict[str, Execution]:
    """Four runs: two of runner 1.0.0 (api, manual), one of its staging 1.1.0 (cancelled),
    one of another agent (webhook); ``old`` was created two days ago and failed on an LLM
    timeout (its error type only: the list filters on the field)."""
    staged(runner, owner, {"type": "object"})
    other_agent = factories.runnable_agent(owner, name="other-agent")
    old = start(runner, owner, a_valid_input())
    Execution.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(days=2), error_type="llm_timeout"
    )
    manual = start(runner, owner, a_valid_input(), source="manual")
    staging = start(runner, owner, version="1.1.0")
    services.execution_cancel(actor=Actor(user=owner), execution=staging)
    hooked = start(other_agent, owner, source="webhook")
    return {"old": old, "manual": manual, "staging": staging, "hooked": hooked}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["hooked", "staging", "manual", "old"]),
        ({"agent": NAME}, ["staging", "manual", "old"]),
        ({"agent": "other-agent"}, ["hooked"]),
        ({"status": "cancelled"}, ["staging"]),
        ({"status": "queued"}, ["hooked", "manual", "old"]),
        ({"status": "queued,cancelled", "agent": NAME}, ["staging", "manual", "old"]),
        ({"trigger_source": "manual"}, ["manual"]),
        ({"trigger_source": "webhook"}, ["hooked"]),
        ({"version": "1.1.0"}, ["staging"]),
        ({"is_staging": "true"}, ["staging"]),
        ({"is_staging": "false", "agent": NAME}, ["manual", "old"]),
        ({"created_before": "YESTERDAY"}, ["old"]),
        ({"created_after": "YESTERDAY"}, ["hooked", "staging", "manual"]),
        ({"error_type": "llm_timeout"}, ["old"]),
        ({"error_type": "llm_time"}, []),
        ({"agent": "nobody"}, []),
    ],
)
def test_list_filters_like_the_api(
    client: Client,
    owner: Any,
    history: dict[str, Execution],
    query: dict[str, str],
    expected: list[str],
) -> None:
    yesterday = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    query = {key: value.replace("YESTERDAY", yesterday) for key, value in query.items()}

    response = login(client, owner).get("/executions/", query)

    assert response.status_code == 200
    assert listed(response) == [str(history[name].pk) for name in expected]


def test_list_filter_by_agent_id(client: Client, owner: Any, history: dict[str, Execution]) -> None:
    hooked = history["hooked"]

    response = login(client, owner).get("/executions/", {"agent": str(hooked.agent_id)})

    assert listed(response) == [str(hooked.pk)]


def test_list_keeps_the_filters_in_the_form(
    client: Client, owner: Any, history: dict[str, Execution]
) -> None:
    response = login(client, owner).get(
        "/executions/",
        {
            "agent": NAME,
            "status": "cancelled",
            "trigger_source": "api",
            "version": "1.1.0",
            "is_staging": "true",
            "created_after": "2020-01-01T00:00",
        },
    )

    found = controls(response).controls
    assert found["agent"]["value"] == NAME
    assert {"value": "cancelled", "selected": None} in found["status"]["options"]
    assert {"value": "api", "selected": None} in found["trigger_source"]["options"]
    assert found["version"]["value"] == "1.1.0"
    assert {"value": "true", "selected": None} in found["is_staging"]["options"]
    assert found["created_after"]["value"] == "2020-01-01T00:00"
    assert found["created_after"]["type"] == "datetime-local"
    assert listed(response) == [str(history["staging"].pk)]
    # the agent field suggests the agents this user may see
    assertContains(response, '<option value="runner"></option>')


@pytest.mark.parametrize(
    ("status", "selected", "expected"),
    [
        ("cancelled", "cancelled", ["staging"]),
        # the dashboard's failure links: one option for both
        ("failed,timed_out", "failed,timed_out", []),
        ("timed_out,failed", "failed,timed_out", []),
        # any other set: an option of its own, so that the select shows the filter
        ("queued,cancelled", "cancelled,queued", ["hooked", "staging", "manual", "old"]),
        ("sleeping", "", []),  # refused: the error is shown, the select says any
    ],
)
def test_the_status_select_shows_the_statuses_the_list_is_filtered_by(
    client: Client,
    owner: Any,
    history: dict[str, Execution],
    status: str,
    selected: str,
    expected: list[str],
) -> None:
    response = login(client, owner).get("/executions/", {"status": status})

    options = controls(response).controls["status"]["options"]
    assert [option["value"] for option in options if "selected" in option] == (
        [selected] if selected else []
    )
    assert listed(response) == [str(history[name].pk) for name in expected]


def test_list_invalid_filter_shows_the_error_and_no_runs(
    client: Client, owner: Any, history: dict[str, Execution]
) -> None:
    response = login(client, owner).get("/executions/", {"status": "sleeping"})

    assert listed(response) == []
    assertContains(response, "status: Select a valid choice.")


def test_list_empty_states(client: Client, owner: Any, runner: Agent) -> None:
    login(client, owner)

    nothing = client.get("/executions/")
    start(runner, owner, a_valid_input())
    no_match = client.get("/executions/", {"status": "failed"})

    assertContains(nothing, "No executions yet.")
    assertContains(nothing, "manage.py trigger_agent")
    assertNotContains(nothing, "Clear the filters")
    assertContains(no_match, "No executions match.")
    assertContains(no_match, '<a href="/executions/">Clear the filters</a>')


def test_list_paginates_and_keeps_the_filters_in_page_links(
    client: Client, owner: Any, runner: Agent
) -> None:
    executions = [start(runner, owner, a_valid_input()) for _ in range(52)]
    newest_first = [str(e.pk) for e in reversed(executions)]
    login(client, owner)

    first = client.get("/executions/", {"agent": NAME})
    second = client.get("/executions/", {"agent": NAME, "page": "2"})

    assert listed(first) == newest_first[:50]
    assertContains(first, "Page 1 of 2 (52)")
    assertContains(first, 'href="?agent=runner&amp;page=2" rel="next"')
    assert listed(second) == newest_first[50:]
    assertContains(second, 'href="?agent=runner&amp;page=1" rel="prev"')


def test_list_htmx_request_returns_only_the_table(
    client: Client, owner: Any, history: dict[str, Execution]
) -> None:
    response = login(client, owner).get("/executions/", {"trigger_source": "manual"}, headers=HTMX)

    assertTemplateUsed(response, "executions/_list_table.html")
    assertTemplateNotUsed(response, "executions/list.html")
    assertTemplateNotUsed(response, "base.html")
    assert listed(response) == [str(history["manual"].pk)]
    assertNotContains(response, 'class="filters"')
    assert "HX-Request" in response["Vary"]


def test_list_shows_the_simulated_provider_as_simulated(
    client: Client, owner: Any, runner: Agent
) -> None:
    execution = run(start(runner, owner, a_valid_input()))
    assert execution.llm_provider == "simulated"

    response = login(client, owner).get("/executions/")

    assertContains(response, '<span class="badge provider-simulated"', count=1)
    assertContains(response, '<span class="badge exec-success">Success</span>')
    assertContains(response, f"{execution.total_tokens}</td>")


# --- execution page -----------------------------------------------------------------------------


@pytest.fixture
def finished(owner: Any, other: Any, settings: Any) -> Execution:
    """A real run of an agent whose first LLM call is rate limited (retried, logged), that
    sends one e-mail, then answers."""
    settings.LLM_RETRY_BASE_SECONDS = 0.01
    settings.LLM_RETRY_MAX_SECONDS = 0.05
    agent = factories.runnable_agent(
        owner,
        name="mailer",
        team="team-a",
        tools=[{"name": "send_email", "config": {"allowed_domains": ["company.com"]}}],
        llm={
            "simulation": {
                "turns": [
                    {
                        "tool_calls": [
                            {
                                "name": "send_email",
                                "arguments": {
                                    "to": ["bob@company.com"],
                                    "subject": "Weekly report",
                                    "body": "All good.",
                                },
                            }
                        ]
                    }
                ],
                "text": "Sent the weekly report.",
                "fail_times": 1,
                "fail_with": "rate_limited",
            }
        },
    )
    execution = run(start(agent, owner, {"week": 12}))
    assert execution.status == "success", execution.error_message
    return execution


@pytest.mark.parametrize(
    ("who", "status"),
    [("owner", 200), ("other", 200), ("outsider", 404), ("viewer", 200), ("admin_user", 200)],
)
def test_execution_page_follows_agent_visibility(
    request: Any, client: Client, finished: Execution, who: str, status: int
) -> None:
    response = login(client, request.getfixturevalue(who)).get(f"/executions/{finished.pk}/")

    assert response.status_code == status
    if status == 404:
        assertNotContains(response, "mailer", status_code=404)


def test_execution_page_shows_the_timeline_actions_input_output_and_log(
    client: Client, owner: Any, finished: Execution, mailoutbox: list[Any]
) -> None:
    response = login(client, owner).get(f"/executions/{finished.pk}/")
    body = html(response)

    assertTemplateUsed(response, "executions/detail.html")
    assertContains(
        response, '<span class="badge exec-success" id="execution-status">Success</span>'
    )
    steps = re.findall(
        r'<tr data-step="(\d+)">\s*<td>\d+</td>\s*<td>([^<]+?)(?: <span[^>]*>[^<]*</span>)?</td>\s*'
        r'<td><code class="kind">([^<]+)</code></td>\s*<td><span class="badge step-([a-z]+)">',
        body,
    )
    kinds = [(kind, status) for _, _, kind, status in steps]
    assert ("llm_call", "success") in kinds
    assert ("tool_call", "success") in kinds
    assert len(steps) == finished.steps.count()
    llm = finished.steps.filter(kind="llm_call").first()
    assert llm is not None
    assertContains(response, f"<td>{llm.latency_ms} ms</td>")
    assertContains(response, f"<td>{llm.prompt_tokens} / {llm.completion_tokens}</td>")
    assertContains(response, f"{finished.prompt_tokens} in · {finished.completion_tokens} out")
    # the action, its target and status
    actions = re.search(r'<table class="list" id="actions">(.*?)</table>', body, re.S)
    assert actions is not None
    assert "send_email" in actions.group(1)
    assert '<span class="badge action-succeeded">succeeded</span>' in actions.group(1)
    assert "bob@company.com" in actions.group(1)
    # input, output, log
    assertContains(response, "&quot;week&quot;: 12")
    assertContains(response, "Sent the weekly report.")
    log = re.search(r'<ul class="log" id="execution-log">(.*?)</ul>', body, re.S)
    assert log is not None
    assert re.search(r'<li class="log-warn">.*?simulated call failed: Simulated', log.group(1))
    # the simulated provider is named as such; links to the agent and its version
    assertContains(response, '<span class="badge provider-simulated"')
    assertContains(response, 'href="/agents/mailer/"')
    assertContains(response, 'href="/agents/mailer/versions/1.0.0/edit"')
    assertNotContains(response, "Cancel run")  # finished
    assert len(mailoutbox) == 1


def test_execution_page_of_a_failed_run_shows_the_error(client: Client, owner: Any) -> None:
    agent = factories.runnable_agent(
        owner, name="flaky", llm={"simulation": {"fail_times": 99, "fail_with": "bad_request"}}
    )
    execution = run(start(agent, owner))
    assert execution.status == "failed"

    response = login(client, owner).get(f"/executions/{execution.pk}/")

    assertContains(response, '<span class="badge exec-failed" id="execution-status">Failed</span>')
    assertContains(response, f"<strong>{execution.error_type}</strong>")
    assertContains(response, "Simulated")


def test_queued_run_page_shows_it_queued_with_its_input(
    client: Client, owner: Any, runner: Agent
) -> None:
    execution = start(runner, owner, a_valid_input(), source="manual")

    response = login(client, owner).get(f"/executions/{execution.pk}/")

    assertContains(response, '<span class="badge exec-queued" id="execution-status">Queued</span>')
    assertContains(response, "Queued: waiting for a worker.")
    assertContains(response, "&quot;email&quot;: &quot;a@company.com&quot;")
    assertContains(response, "No steps yet.")
    assertContains(response, "No output yet.")
    assertContains(response, "manual · alice")


def test_run_awaiting_the_workflows_report_says_so(
    client: Client, owner: Any, runner: Agent
) -> None:
    execution = start(runner, owner, a_valid_input())
    services.execution_transition(
        execution_id=execution.pk,
        to="running",
        fields={"started_at": timezone.now(), "awaiting_report": True},
    )

    response = login(client, owner).get(f"/executions/{execution.pk}/")

    assertContains(response, "Waiting for the workflow's report")


def test_staging_run_page_has_the_badge_and_the_version_link(
    client: Client, owner: Any, runner: Agent
) -> None:
    staged(runner, owner, {"type": "object"})
    execution = start(runner, owner, version="1.1.0")

    response = login(client, owner).get(f"/executions/{execution.pk}/")

    assertContains(response, '<span class="badge stage-staging">staging run</span>')
    assertContains(response, 'href="/agents/runner/versions/1.1.0/edit"')


def test_execution_page_htmx_request_returns_the_partial(
    client: Client, owner: Any, finished: Execution
) -> None:
    response = login(client, owner).get(f"/executions/{finished.pk}/", headers=HTMX)

    assertTemplateUsed(response, "executions/_detail.html")
    assertTemplateNotUsed(response, "base.html")
    assert html(response).lstrip().startswith('<section id="execution"')


def test_unknown_execution_is_404(client: Client, owner: Any) -> None:
    response = login(client, owner).get("/executions/00000000-0000-0000-0000-000000000000/")

    assert response.status_code == 404


# --- cancel -------------------------------------------------------------------------------------


def cancel_url(execution: Execution) -> str:
    return f"/executions/{execution.pk}/cancel"


@pytest.mark.parametrize(
    ("who", "sees_button"),
    [("owner", True), ("other", True), ("viewer", False), ("admin_user", True)],
)
def test_cancel_button_is_shown_to_who_may_cancel(
    request: Any, client: Client, owner: Any, runner: Agent, who: str, sees_button: bool
) -> None:
    execution = start(runner, owner, a_valid_input())

    response = login(client, request.getfixturevalue(who)).get(f"/executions/{execution.pk}/")

    assert ('data-execution-action="cancel"' in html(response)) is sees_button


@pytest.mark.parametrize("who", ["owner", "other"])
def test_cancel_of_a_queued_run_cancels_it_at_once(
    request: Any, client: Client, owner: Any, runner: Agent, who: str
) -> None:
    execution = start(runner, owner, a_valid_input())

    response = login(client, request.getfixturevalue(who)).post(cancel_url(execution), headers=HTMX)

    assert response.status_code == 200
    assertTemplateUsed(response, "executions/_detail.html")
    assertTemplateNotUsed(response, "base.html")
    assertContains(response, "The run is cancelled.")
    assertContains(
        response, '<span class="badge exec-cancelled" id="execution-status">Cancelled</span>'
    )
    assertNotContains(response, 'data-execution-action="cancel"')
    execution.refresh_from_db()
    assert execution.status == "cancelled"


def test_cancel_of_a_running_run_asks_it_to_stop(client: Client, owner: Any, runner: Agent) -> None:
    execution = start(runner, owner, a_valid_input())
    services.execution_transition(
        execution_id=execution.pk, to="running", fields={"started_at": timezone.now()}
    )

    response = login(client, owner).post(cancel_url(execution), follow=True)

    assertRedirects(response, f"/executions/{execution.pk}/")
    assertContains(response, "Cancel requested: the run stops before its next step.")
    assertNotContains(response, 'data-execution-action="cancel"')  # asked already
    execution.refresh_from_db()
    assert (execution.status, execution.cancel_requested) == ("running", True)


def test_cancel_of_a_finished_run_is_409(client: Client, owner: Any, finished: Execution) -> None:
    response = login(client, owner).post(cancel_url(finished), headers=HTMX)

    assertContains(response, "The execution is already success.", status_code=409)
    finished.refresh_from_db()
    assert finished.status == "success"


def test_viewer_forged_cancel_is_refused(
    client: Client, owner: Any, viewer: Any, runner: Agent
) -> None:
    execution = start(runner, owner, a_valid_input())
    login(client, viewer)

    partial = client.post(cancel_url(execution), headers=HTMX)
    page = client.post(cancel_url(execution), follow=True)

    assertContains(partial, "You may not cancel runs of this agent.", status_code=403)
    assertContains(page, '<li class="msg msg-error">You may not cancel runs of this agent.')
    execution.refresh_from_db()
    assert execution.status == "queued"


def test_outsider_cancel_is_404(client: Client, owner: Any, outsider: Any, runner: Agent) -> None:
    execution = start(runner, owner, a_valid_input())

    response = login(client, outsider).post(cancel_url(execution), headers=HTMX)

    assert response.status_code == 404
    execution.refresh_from_db()
    assert execution.status == "queued"


def test_cancel_refuses_get(client: Client, owner: Any, runner: Agent) -> None:
    execution = start(runner, owner, a_valid_input())

    assert login(client, owner).get(cancel_url(execution)).status_code == 405
    execution.refresh_from_db()
    assert execution.status == "queued"
