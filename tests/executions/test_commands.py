"""``manage.py trigger_agent``: runs an agent through the same service as the API and the
console, prints the execution as JSON, waits for the end with ``--wait``, and stops with a
clear message (exit status 1) on anything it cannot do."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from agents import services as agent_services
from agents.models import Agent
from controlplane.access import Actor
from controlplane.models import AuditEvent
from executions.models import Execution
from tests import factories
from tests.processes import ROOT, child_env

SCHEMA = {
    "type": "object",
    "properties": {"mailbox": {"type": "string", "format": "email"}, "limit": {"type": "integer"}},
    "required": ["mailbox"],
}


def trigger(*args: str, **options: Any) -> tuple[dict[str, Any], str]:
    """Run the command; its stdout parsed as JSON, and its stderr."""
    out, err = StringIO(), StringIO()
    call_command("trigger_agent", *args, stdout=out, stderr=err, **options)
    return json.loads(out.getvalue()), err.getvalue()


@pytest.fixture
def runner(owner: Any, other: Any) -> Agent:
    return factories.runnable_agent(
        owner,
        name="runner",
        team="team-a",
        input_schema=SCHEMA,
        llm={"simulation": {"text": "Inbox summarized."}},
    )


@pytest.mark.django_db
def test_prints_the_started_execution_as_json(runner: Agent) -> None:
    printed, _ = trigger("runner", "--input", '{"mailbox": "ops@company.com", "limit": 5}')

    execution = Execution.objects.get()
    assert printed["execution_id"] == str(execution.pk)
    assert printed["status"] == "queued"
    assert printed["agent_name"] == "runner"
    assert printed["agent_version"] == "1.0.0"
    assert printed["trigger_source"] == "manual"
    assert printed["links"]["page"] == f"/executions/{execution.pk}/"
    assert execution.input == {"mailbox": "ops@company.com", "limit": 5}
    assert execution.trigger_source == "manual"
    # the system actor the service trusts
    assert execution.trigger_user == "system:manage.py"
    assert execution.triggered_by is None
    assert AuditEvent.objects.filter(
        action="execution.created", target_id=str(execution.pk), actor_label="system:manage.py"
    ).exists()


@pytest.mark.django_db
def test_agent_may_be_named_by_id(runner: Agent) -> None:
    printed, _ = trigger(str(runner.pk), "--input", '{"mailbox": "ops@company.com"}')

    assert printed["agent_id"] == str(runner.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["owner", "other"])
def test_runs_as_the_given_user(request: Any, runner: Agent, who: str) -> None:
    user = request.getfixturevalue(who)

    trigger("runner", "--input", '{"mailbox": "ops@company.com"}', "--user", user.username)

    execution = Execution.objects.get()
    assert execution.trigger_user == user.username
    assert execution.triggered_by == user


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "message"),
    [
        ("outsider", "No agent 'runner'."),  # its existence is not disclosed
        ("viewer", "You may not run this agent."),
    ],
)
def test_a_user_without_the_right_is_refused(
    request: Any, runner: Agent, who: str, message: str
) -> None:
    user = request.getfixturevalue(who)

    with pytest.raises(CommandError, match=re.escape(message)):
        trigger("runner", "--input", '{"mailbox": "ops@company.com"}', "--user", user.username)

    assert Execution.objects.count() == 0


@pytest.mark.django_db
def test_staging_version_by_name(owner: Any, runner: Agent) -> None:
    actor = Actor(user=owner)
    agent_services.agent_version_create(
        actor=actor, agent=runner, version="1.1.0", clone_from="1.0.0"
    )
    agent_services.agent_version_promote(actor=actor, agent=runner, version="1.1.0")

    printed, _ = trigger("runner", "--input", '{"mailbox": "a@company.com"}', "--version", "1.1.0")

    assert printed["is_staging"] is True
    assert printed["agent_version"] == "1.1.0"
    assert Execution.objects.get().is_staging is True


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runner", "--input", "{mailbox"], "--input is not valid JSON: Expecting property name"),
        (
            ["runner", "--input", '{"mailbox": "\\u0000"}'],
            "--input: Must not contain NUL characters.",
        ),
        (["runner", "--input", '{"mailbox": "\\udfff"}'], "--input: Must be Unicode text"),
        (["nobody", "--input", "{}"], "No agent 'nobody'."),
        (["runner", "--input", "{}", "--user", "ghost"], "No user 'ghost'."),
        (["runner", "--input", "{}", "--wait", "0"], "--wait takes a number of seconds above 0."),
        (
            ["runner", "--input", '{"mailbox": "not-mail", "limit": "5"}'],
            "The input does not match the agent's input schema:\n"
            "  input.limit: '5' is not of type 'integer'\n"
            "  input.mailbox: 'not-mail' is not a 'email'",
        ),
        (["runner", "--input", "{}"], "input: 'mailbox' is a required property"),
        (
            ["runner", "--input", '{"mailbox": "a@company.com"}', "--version", "9.9.9"],
            "Version 9.9.9 of 'runner' is neither the production nor the staging version",
        ),
    ],
)
def test_what_it_cannot_do_is_a_command_error(runner: Agent, args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as raised:
        trigger(*args)

    assert message in str(raised.value)
    assert Execution.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["pause", "deprecate", "archive"])
def test_an_agent_that_may_not_run_is_a_command_error(
    owner: Any, runner: Agent, action: str
) -> None:
    agent_services.agent_transition(actor=Actor(user=owner), agent=runner, action=action)
    status = {"pause": "paused", "deprecate": "deprecated", "archive": "archived"}[action]

    with pytest.raises(CommandError, match=f"Agent 'runner' is {status}"):
        trigger("runner", "--input", '{"mailbox": "a@company.com"}')

    assert Execution.objects.count() == 0


@pytest.mark.django_db
def test_an_inactive_user_is_refused(runner: Agent) -> None:
    factories.user("gone", role="operator", teams=["team-a"], is_active=False)

    with pytest.raises(CommandError, match=re.escape("User 'gone' is inactive.")):
        trigger("runner", "--input", '{"mailbox": "a@company.com"}', "--user", "gone")


@pytest.mark.django_db
def test_wait_without_a_worker_times_out_and_says_so(runner: Agent) -> None:
    out = StringIO()

    with pytest.raises(CommandError, match=re.escape("The run is still queued after 0.3 seconds.")):
        call_command(
            "trigger_agent",
            "runner",
            "--input",
            '{"mailbox": "a@company.com"}',
            "--wait",
            "0.3",
            stdout=out,
        )

    printed = json.loads(out.getvalue())
    assert printed["status"] == "queued"
    assert printed["input"] == {"mailbox": "a@company.com"}
    assert printed["output"] is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runner", "--input", "not json"], "CommandError: --input is not valid JSON"),
        (["nobody"], "CommandError: No agent 'nobody'."),
    ],
)
def test_exit_status_is_1_with_the_message(args: list[str], message: str) -> None:
    finished = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "trigger_agent", *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert finished.returncode == 1, finished.stderr
    assert message in finished.stderr
    assert "Traceback" not in finished.stderr
    assert finished.stdout == ""


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_wait_prints_the_finished_execution(owner: Any, other: Any, live_worker: str) -> None:
    factories.runnable_agent(
        owner,
        name="runner",
        team="team-a",
        input_schema=SCHEMA,
        llm={"simulation": {"text": "Inbox summarized."}},
    )

    printed, _ = trigger("runner", "--input", '{"mailbox": "ops@company.com"}', "--wait", "60")

    assert printed["status"] == "success"
    assert "Inbox summarized." in printed["output_summary"]
    assert printed["error_message"] == ""
    assert printed["input"] == {"mailbox": "ops@company.com"}
    assert [step["kind"] for step in printed["steps_executed"]] == ["llm_call"]
    assert Execution.objects.get().status == "success"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_wait_for_a_run_that_fails_prints_it_and_exits_with_the_error(
    owner: Any, live_worker: str
) -> None:
    factories.runnable_agent(
        owner, name="broken", llm={"simulation": {"fail_times": 99, "fail_with": "auth"}}
    )
    out = StringIO()

    with pytest.raises(CommandError, match="The run ended failed: Simulated auth failure"):
        call_command("trigger_agent", "broken", "--wait", "60", stdout=out)

    printed = json.loads(out.getvalue())
    assert printed["status"] == "failed"
    assert printed["error_type"] == "llm_auth"
