"""``manage.py trigger_agent NAME --input JSON [--version V] [--user USERNAME] [--wait SECONDS]``

Runs an agent through ``executions.trigger.execution_trigger`` (source: manual) and prints
the execution as JSON (the API's 202 answer). With ``--wait`` it then polls until the run
ends and prints the final execution (the API's detail shape: status, output, error, steps).

Exit status: 0 when the run was started (with ``--wait``: when it succeeded); 1 with the
reason otherwise: bad JSON, unknown agent or user, invalid input, agent not runnable, and
with ``--wait`` a run that ended other than ``success`` or did not end in time.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder

from agents.models import Agent
from agents.selectors import agent_by_ref, agent_get
from controlplane.access import Actor
from controlplane.errors import ServiceError
from controlplane.serializers import JSON_PROBLEMS, json_problem
from executions.api.serializers import ExecutionDetailSerializer, ExecutionTriggeredSerializer
from executions.models import Execution
from executions.trigger import TriggerRequest, execution_trigger

SYSTEM_ACTOR = "manage.py"
POLL_SECONDS = (0.05, 0.5)  # first and longest pause between two looks at the run


class Command(BaseCommand):
    help = (
        "Run an agent (its production version, or the staging version named with --version) "
        "and print the execution as JSON; with --wait, wait for the run to end."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # --version names the agent's version here, not Django's (a base option of every
        # command): the later definition wins.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("agent", metavar="NAME", help="The agent's name or id.")
        parser.add_argument(
            "--input",
            default="{}",
            metavar="JSON",
            help="The input, checked against the version's input_schema (default: {}).",
        )
        parser.add_argument(
            "--version", dest="agent_version", metavar="V", help="Default: production."
        )
        parser.add_argument(
            "--user",
            metavar="USERNAME",
            help=f"Run as this user, with their rights (default: the system actor "
            f"{SYSTEM_ACTOR!r}, which may run any agent).",
        )
        parser.add_argument(
            "--wait",
            type=float,
            metavar="SECONDS",
            help="Wait up to this long for the run to end and print the final execution.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        value = _parse_input(options["input"])
        wait = options.get("wait")
        if wait is not None and wait <= 0:
            raise CommandError("--wait takes a number of seconds above 0.")
        actor = _actor(options.get("user"))
        agent = _agent(actor, options["agent"])
        try:
            result = execution_trigger(
                TriggerRequest(
                    actor=actor,
                    agent=agent,
                    input=value,
                    source=Execution.Source.MANUAL,
                    version=options.get("agent_version"),
                )
            )
        except ServiceError as exc:
            raise CommandError(_message(exc)) from None
        execution = result.execution
        if wait is None:
            self._print(ExecutionTriggeredSerializer(execution).data)
            return
        finished = _wait_for_end(execution, wait)
        self._print(ExecutionDetailSerializer(execution).data)
        if not finished:
            raise CommandError(f"The run is still {execution.status} after {wait:g} seconds.")
        if execution.status != Execution.Status.SUCCESS:
            reason = f": {execution.error_message}" if execution.error_message else "."
            raise CommandError(f"The run ended {execution.status}{reason}")

    def _print(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, cls=DjangoJSONEncoder, ensure_ascii=False))


def _parse_input(text: str) -> Any:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CommandError(f"--input is not valid JSON: {exc}") from None
    problem = json_problem(value)
    if problem:
        raise CommandError(f"--input: {JSON_PROBLEMS[problem]}")
    return value


def _actor(username: str | None) -> Actor:
    if username is None:
        return Actor.for_system(SYSTEM_ACTOR)
    user = User.objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user {username!r}.")
    if not user.is_active:
        raise CommandError(f"User {username!r} is inactive.")
    return Actor(user=user)


def _agent(actor: Actor, ref: str) -> Agent:
    if actor.user is not None:  # what this user may see, as everywhere else
        try:
            return agent_get(actor=actor, ref=ref)
        except ServiceError as exc:
            raise CommandError(exc.message) from None
    agent = agent_by_ref(ref)
    if agent is None:
        raise CommandError(f"No agent {ref!r}.")
    return agent


def _message(exc: ServiceError) -> str:
    problems = exc.details.get("validationErrors") if isinstance(exc.details, dict) else None
    if not problems:
        return exc.message
    lines = [f"  {problem['field']}: {problem['message']}" for problem in problems]
    return "The input does not match the agent's input schema:\n" + "\n".join(lines)


def _wait_for_end(execution: Execution, seconds: float) -> bool:
    """Poll the row until the run ends (True) or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    pause = POLL_SECONDS[0]
    while True:
        execution.refresh_from_db()
        if execution.is_terminal:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, POLL_SECONDS[1])
