"""Runs in the Django admin: read-only, limited to the runs of visible agents, a cancel
action through ``execution_cancel``; and the agents' "Run selected agents" action through
``execution_trigger``. Real admin views through the test client, with the trio (alice,
bob, charlie), a viewer (vera) and an admin (root)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agents import services as agent_services
from agents.models import Agent
from controlplane.access import Actor
from controlplane.models import AuditEvent
from executions import services
from executions.models import Execution
from executions.runtime import run_execution
from executions.trigger import TriggerRequest, execution_trigger
from tests import factories

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/executions/execution/"
AGENTS = "/admin/agents/agent/"
REQUIRED_SCHEMA = {
    "type": "object",
    "properties": {"mailbox": {"type": "string"}},
    "required": ["mailbox"],
}


def logged_in(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def start(agent: Agent, user: Any, **kwargs: Any) -> Execution:
    return execution_trigger(
        TriggerRequest(actor=Actor(user=user), agent=agent, input={}, source="api", **kwargs)
    ).execution


def listed(client: Client, **params: Any) -> list[str]:
    response = client.get(CHANGELIST, params)
    assert response.status_code == 200, response.content
    return [str(execution.pk) for execution in response.context["cl"].result_list]


def shown(client: Client, response: Any) -> list[tuple[str, str]]:
    """The messages on the page the response redirects to."""
    assert response.status_code == 302, response.content
    page = client.get(response["Location"])
    return [(message.level_tag, str(message)) for message in page.context["messages"]]


def action(client: Client, url: str, name: str, *pks: Any) -> Any:
    return client.post(url, {"action": name, "_selected_action": [str(pk) for pk in pks]})


def offered_actions(client: Client, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200
    form = response.context["action_form"]
    if form is None:  # no action at all
        return []
    return [value for value, _ in form.fields["action"].choices if value]


@pytest.fixture
def runner(owner: Any, other: Any) -> Agent:
    return factories.runnable_agent(owner, name="runner", team="team-a")


@pytest.fixture
def foreign(outsider: Any) -> Agent:
    """charlie's agent, which alice's team may not see."""
    return factories.runnable_agent(outsider, name="foreign", team="team-b")


# --- the changelist -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "sees"),
    [
        ("owner", {"runner"}),
        ("other", {"runner"}),
        ("viewer", {"runner"}),
        ("outsider", {"foreign"}),
        ("admin_user", {"runner", "foreign"}),
    ],
)
def test_changelist_lists_only_runs_of_agents_the_user_may_see(
    request: Any,
    client: Client,
    owner: Any,
    outsider: Any,
    runner: Agent,
    foreign: Agent,
    who: str,
    sees: set[str],
) -> None:
    mine, theirs = start(runner, owner), start(foreign, outsider)

    shown_ids = listed(logged_in(client, request.getfixturevalue(who)))

    by_agent = {"runner": str(mine.pk), "foreign": str(theirs.pk)}
    assert sorted(shown_ids) == sorted(by_agent[name] for name in sees)


def test_changelist_columns(client: Client, owner: Any, runner: Agent) -> None:
    execution = start(runner, owner)
    run_execution(execution_id=str(execution.pk), attempt=1, worker="w@test")
    execution.refresh_from_db()

    response = logged_in(client, owner).get(CHANGELIST)

    row = response.content.decode()
    assert "runner" in row
    assert ">1.0.0<" in row
    assert "Success" in row
    assert f">{execution.total_tokens}<" in row


def test_changelist_filters_and_search(
    client: Client, owner: Any, outsider: Any, runner: Agent, foreign: Agent
) -> None:
    agent_services.agent_version_create(
        actor=Actor(user=owner), agent=runner, version="1.1.0", clone_from="1.0.0"
    )
    agent_services.agent_version_promote(actor=Actor(user=owner), agent=runner, version="1.1.0")
    runner.refresh_from_db()
    queued = start(runner, owner)
    staging = start(runner, owner, version="1.1.0")
    manual = execution_trigger(
        TriggerRequest(actor=Actor(user=owner), agent=runner, input={}, source="manual")
    ).execution
    services.execution_cancel(actor=Actor(user=owner), execution=manual)
    start(foreign, outsider)
    logged_in(client, owner)

    assert listed(client, status__exact="cancelled") == [str(manual.pk)]
    assert sorted(listed(client, status__exact="queued")) == sorted(
        [str(queued.pk), str(staging.pk)]
    )
    assert listed(client, trigger_source__exact="manual") == [str(manual.pk)]
    assert listed(client, is_staging__exact="1") == [str(staging.pk)]
    assert len(listed(client, agent__id__exact=str(runner.pk))) == 3
    assert listed(client, q=str(staging.pk)) == [str(staging.pk)]
    assert len(listed(client, q="runn")) == 3
    assert listed(client, q="foreign") == []  # charlie's agent, hidden from alice
    # the agent filter offers only agents with visible runs
    response = client.get(CHANGELIST)
    assert "foreign" not in response.content.decode()


# --- read-only ------------------------------------------------------------------------------


def test_change_page_is_read_only_and_a_forged_post_changes_nothing(
    client: Client, owner: Any, runner: Agent
) -> None:
    execution = start(runner, owner)
    url = reverse("admin:executions_execution_change", args=[execution.pk])
    logged_in(client, owner)

    page = client.get(url)
    forged = client.post(url, {"status": "success", "output_summary": "hand made"})

    assert page.status_code == 200
    assert page.context["adminform"].form.fields == {}  # every field is read-only
    assert "Save" not in page.content.decode()
    assert forged.status_code == 403
    execution.refresh_from_db()
    assert (execution.status, execution.output_summary) == ("queued", "")


def test_change_page_shows_steps_and_actions_inline(
    client: Client, owner: Any, runner: Agent, settings: Any
) -> None:
    agent = factories.runnable_agent(
        owner,
        name="mailer",
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
                                    "subject": "s",
                                    "body": "b",
                                },
                            }
                        ]
                    }
                ],
                "text": "done",
            }
        },
    )
    execution = start(agent, owner)
    run_execution(execution_id=str(execution.pk), attempt=1, worker="w@test")

    response = logged_in(client, owner).get(
        reverse("admin:executions_execution_change", args=[execution.pk])
    )

    inlines = {
        inline.opts.model._meta.model_name: inline
        for inline in response.context["inline_admin_formsets"]
    }
    assert set(inlines) == {"executionstep", "executionaction"}
    assert len(inlines["executionstep"].formset.forms) == execution.steps.count() >= 2
    assert len(inlines["executionaction"].formset.forms) == 1
    body = response.content.decode()
    assert "send_email" in body
    assert "bob@company.com" in body


def test_nobody_adds_or_deletes_runs(
    client: Client, admin_user: Any, owner: Any, runner: Agent
) -> None:
    execution = start(runner, owner)
    logged_in(client, admin_user)

    add = client.get(reverse("admin:executions_execution_add"))
    delete = client.post(
        reverse("admin:executions_execution_delete", args=[execution.pk]), {"post": "yes"}
    )

    assert add.status_code == 403
    assert delete.status_code == 403
    assert "delete_selected" not in offered_actions(client, CHANGELIST)
    assert Execution.objects.filter(pk=execution.pk).exists()


def test_outsider_cannot_open_a_run_of_someone_elses_agent(
    client: Client, owner: Any, outsider: Any, runner: Agent
) -> None:
    execution = start(runner, owner)

    response = logged_in(client, outsider).get(
        reverse("admin:executions_execution_change", args=[execution.pk])
    )

    # the admin's answer to an object outside the queryset: back to the index, "not found"
    assert response.status_code == 302
    assert "runner" not in client.get(response["Location"]).content.decode()


# --- the cancel action ------------------------------------------------------------------------


def test_cancel_action_cancels_queued_asks_running_and_refuses_finished(
    client: Client, owner: Any, runner: Agent
) -> None:
    queued = start(runner, owner)
    running = start(runner, owner)
    services.execution_transition(
        execution_id=running.pk, to="running", fields={"started_at": timezone.now()}
    )
    finished = start(runner, owner)
    run_execution(execution_id=str(finished.pk), attempt=1, worker="w@test")
    logged_in(client, owner)

    response = action(client, CHANGELIST, "cancel_selected", queued.pk, running.pk, finished.pk)

    assert sorted(shown(client, response)) == sorted(
        [
            ("success", f"runner run {str(queued.pk)[:8]}: cancelled."),
            (
                "success",
                f"runner run {str(running.pk)[:8]}: cancel requested; it stops before its "
                "next step.",
            ),
            ("error", f"runner run {str(finished.pk)[:8]}: The execution is already success."),
        ]
    )
    for execution in (queued, running, finished):
        execution.refresh_from_db()
    assert queued.status == "cancelled"
    assert (running.status, running.cancel_requested) == ("running", True)
    assert finished.status == "success"
    assert AuditEvent.objects.filter(action="execution.cancelled", actor_label="alice").count() == 1


def test_cancel_action_is_offered_to_operators_not_to_viewers(
    client: Client, owner: Any, viewer: Any, runner: Agent
) -> None:
    execution = start(runner, owner)

    assert "cancel_selected" in offered_actions(logged_in(client, owner), CHANGELIST)
    assert offered_actions(logged_in(client, viewer), CHANGELIST) == []
    forged = action(client, CHANGELIST, "cancel_selected", execution.pk)

    assert forged.status_code == 200  # the admin redisplays the list: no such action
    execution.refresh_from_db()
    assert execution.status == "queued"


def test_cancel_action_ignores_runs_the_user_may_not_see(
    client: Client, owner: Any, outsider: Any, runner: Agent
) -> None:
    execution = start(runner, owner)

    response = action(logged_in(client, outsider), CHANGELIST, "cancel_selected", execution.pk)

    assert response.status_code in (200, 302)
    execution.refresh_from_db()
    assert execution.status == "queued"


# --- the agents' Run action -------------------------------------------------------------------


def test_run_action_starts_a_manual_run_of_each_agent(
    client: Client, owner: Any, runner: Agent
) -> None:
    second = factories.runnable_agent(owner, name="second")
    logged_in(client, owner)

    response = action(client, AGENTS, "run_selected", runner.pk, second.pk)

    messages = shown(client, response)
    executions = {e.agent.name: e for e in Execution.objects.select_related("agent")}
    assert set(executions) == {"runner", "second"}
    for name, execution in executions.items():
        assert (execution.trigger_source, execution.trigger_user) == ("manual", "alice")
        assert execution.input == {}
        assert execution.status == "queued"
        link = reverse("admin:executions_execution_change", args=[execution.pk])
        assert (
            "success",
            f'{name}: run <a href="{link}">{str(execution.pk)[:8]}</a> of 1.0.0 is queued.',
        ) in messages


def test_run_action_reports_what_the_service_refuses(
    client: Client, owner: Any, runner: Agent
) -> None:
    strict = factories.runnable_agent(owner, name="strict", input_schema=REQUIRED_SCHEMA)
    paused = factories.runnable_agent(owner, name="paused")
    agent_services.agent_transition(actor=Actor(user=owner), agent=paused, action="pause")
    draft = factories.agent(owner)
    logged_in(client, owner)

    response = action(client, AGENTS, "run_selected", strict.pk, paused.pk, draft.pk)

    assert sorted(shown(client, response)) == [
        (
            "error",
            "job-application-agent: Agent 'job-application-agent' is draft: only an active "
            "agent runs.",
        ),
        ("error", "paused: Agent 'paused' is paused: only an active agent runs."),
        (
            "error",
            "strict: The input does not match the agent's input schema: input: 'mailbox' is "
            "a required property",
        ),
    ]
    assert Execution.objects.count() == 0


def test_run_action_is_not_offered_to_a_viewer_and_a_forged_one_does_nothing(
    client: Client, viewer: Any, runner: Agent
) -> None:
    logged_in(client, viewer)

    assert "run_selected" not in offered_actions(client, AGENTS)
    response = action(client, AGENTS, "run_selected", runner.pk)

    assert response.status_code == 200
    assert Execution.objects.count() == 0


def test_run_action_is_offered_to_operators(client: Client, other: Any, runner: Agent) -> None:
    assert "run_selected" in offered_actions(logged_in(client, other), AGENTS)
