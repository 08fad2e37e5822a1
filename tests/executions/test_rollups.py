"""The closed days' sums the dashboard reads (``executions.rollups``): the same figures as
the runs themselves, summed once a day has settled and its runs have ended, forgotten when
one of its runs moves all the same, and summed once by readers racing for it.

The window is read at a fixed instant (``NOW``), with runs moved to the days around it; the
figures are checked against sums made here, in Python, from the runs."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Agent
from console import dashboard as panels
from console import failures
from controlplane.access import Actor
from controlplane.errors import Forbidden
from controlplane.models import AuditEvent
from executions.maintenance import sweep
from executions.models import DayRollup, Execution, RolledUpDay
from executions.rollups import SETTLE, day_start, days_forget, summed_days
from executions.selectors import execution_list_for
from executions.services import execution_transition
from tests import factories
from tests.policies.test_concurrency import at_once

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
AT = panels.window(NOW)
TODAY = AT.today.date()
S = Execution.Status
STATUSES = [S.SUCCESS, S.SUCCESS, S.FAILED, S.TIMED_OUT, S.CANCELLED, S.BLOCKED, S.EXPIRED]


def run(agent: Agent, at: datetime, status: str = S.SUCCESS, n: int = 0) -> Execution:
    execution = Execution.objects.create(
        agent=agent,
        agent_version=agent.production_version,
        trigger_source=Execution.Source.API,
        status=status,
        # some runs without a cost or a latency: they count as runs, not in the sums
        estimated_cost_usd=None if n % 5 == 0 else Decimal(n % 7) / 100,
        total_latency_ms=None if n % 4 == 0 else 100 * (n % 13),
        llm_provider=["anthropic", "openai", ""][n % 3],
    )
    Execution.objects.filter(pk=execution.pk).update(created_at=at)
    return execution


def spread(agents: list[Agent], days: int = 33) -> None:
    """Ended runs on each of the ``days`` days up to NOW (the window and a few days before
    it), several per day and agent, every outcome."""
    n = 0
    for back in range(days):
        for agent in agents:
            for hour in (0, 7, 23):
                at = AT.today - timedelta(days=back) + timedelta(hours=hour, minutes=n % 60)
                if at > NOW:
                    continue
                run(agent, at, STATUSES[n % len(STATUSES)], n)
                n += 1


def expected(actor: Actor) -> dict[tuple[Any, date, str], tuple[Any, ...]]:
    """The window's runs the actor may see, summed by agent, day and provider, in Python."""
    sums: dict[tuple[Any, date, str], list[Any]] = defaultdict(lambda: [0, 0, 0, 0, 0, Decimal(0)])
    for execution in execution_list_for(actor=actor).filter(created_at__gte=AT.since):
        cell = sums[(execution.agent_id, execution.created_at.date(), execution.llm_provider)]
        cell[0] += 1
        cell[1] += execution.status in (S.SUCCESS, S.FAILED, S.TIMED_OUT)
        cell[2] += execution.status == S.SUCCESS
        if execution.total_latency_ms is not None:
            cell[3] += execution.total_latency_ms
            cell[4] += 1
        cell[5] += execution.estimated_cost_usd or 0
    return {key: tuple(value) for key, value in sums.items()}


def cells(
    actor: Actor, days: set[date] | None = None
) -> dict[tuple[Any, date, str], tuple[Any, ...]]:
    found: dict[tuple[Any, date, str], tuple[Any, ...]] = {}
    for cell in panels.window_cells(scope=panels.scope(actor), at=AT, days=days):
        key = (cell.agent_id, cell.day, cell.llm_provider)
        assert key not in found, f"{key} twice"  # a day read from its sums and its runs
        found[key] = (
            cell.runs,
            cell.finished,
            cell.succeeded,
            cell.latency_sum,
            cell.latency_count,
            cell.cost,
        )
    return found


def summed() -> set[date]:
    return set(RolledUpDay.objects.values_list("day", flat=True))


@pytest.fixture
def agents(owner: User, outsider: User) -> list[Agent]:
    return [
        factories.runnable_agent(owner, name="alpha", team="team-a"),
        factories.runnable_agent(owner, name="beta", team="team-a"),
        factories.runnable_agent(outsider, name="gamma", team="team-b"),
    ]


@pytest.mark.django_db
def test_the_closed_days_are_summed_once_and_read_back_as_the_runs_add_up(
    agents: list[Agent], admin_user: User, owner: User, outsider: User
) -> None:
    spread(agents)
    admin = Actor(user=admin_user)
    want = expected(admin)

    assert cells(admin, days=set()) == want  # every day from the runs
    assert not summed()
    assert cells(admin) == want  # the first reader sums the closed days
    closed = set(AT.days) - {TODAY}
    assert summed() == closed
    assert {row.day for row in DayRollup.objects.all()} == closed  # none before the window
    assert DayRollup.objects.filter(day=TODAY).count() == 0  # today is read from its runs
    rows = DayRollup.objects.count()

    assert cells(admin) == want  # read back from the sums
    seen = panels.scope(admin)
    overview = panels.dashboard_overview(scope=seen, at=AT)  # today's runs, read again
    assert overview.runs_today > 0
    assert (
        panels.dashboard_overview(scope=seen, at=AT, cells=panels.window_cells(scope=seen, at=AT))
        == overview
    )
    assert DayRollup.objects.count() == rows  # not summed again
    # each user, their agents' share of the same sums
    for user in (owner, outsider):
        actor = Actor(user=user)
        mine = cells(actor)
        assert mine == expected(actor)
        assert mine and len(mine) < len(want)


@pytest.mark.django_db
def test_the_drops_read_from_the_sums_are_those_read_from_the_runs(
    agents: list[Agent], admin_user: User
) -> None:
    spread(agents)
    for minutes in range(10):  # alpha failing in the last 24 h: 3 of 13, 50 % before
        run(agents[0], NOW - timedelta(hours=2, minutes=minutes), S.FAILED)
    seen = panels.scope(Actor(user=admin_user))

    from_runs = failures.success_rate_drops(scope=seen, at=AT, days=set())
    from_sums = failures.success_rate_drops(scope=seen, at=AT)

    assert [drop.name for drop in from_runs] == ["alpha"]
    assert from_sums == from_runs
    # the baseline's whole days were read from their sums (its first and last, partial,
    # from the runs)
    assert {TODAY - timedelta(days=n) for n in range(2, 8)} <= summed()


@pytest.mark.django_db
def test_a_day_with_a_run_not_ended_is_read_from_its_runs_until_it_ends(
    agents: list[Agent], admin_user: User
) -> None:
    spread(agents)
    admin = Actor(user=admin_user)
    waiting_day = TODAY - timedelta(days=4)
    waiting = run(agents[0], AT.today - timedelta(days=4, hours=-3), S.PENDING_APPROVAL)

    assert cells(admin) == expected(admin)
    assert waiting_day not in summed()
    assert summed() == set(AT.days) - {TODAY, waiting_day}

    execution_transition(execution_id=waiting.pk, to=S.EXPIRED)
    assert cells(admin) == expected(admin)
    assert waiting_day in summed()  # ended: summed by the next reader


@pytest.mark.django_db
def test_a_day_is_summed_only_once_it_has_settled(agents: list[Agent], admin_user: User) -> None:
    spread(agents, days=3)
    admin = Actor(user=admin_user)
    just_after_midnight = panels.window(AT.today + SETTLE - timedelta(seconds=1))
    yesterday = TODAY - timedelta(days=1)

    summed_days(just_after_midnight.days, now=just_after_midnight.now)
    assert yesterday not in summed()  # a run created before midnight may still commit

    summed_days(AT.days, now=AT.today + SETTLE)
    assert yesterday in summed()
    assert cells(admin) == expected(admin)


@pytest.mark.django_db
def test_a_run_of_a_summed_day_that_moves_all_the_same_makes_the_day_summed_again(
    agents: list[Agent], admin_user: User
) -> None:
    spread(agents)
    admin = Actor(user=admin_user)
    cells(admin)
    day = TODAY - timedelta(days=6)
    assert day in summed()
    # a run whose creating transaction committed after its day was summed
    late = run(agents[1], AT.today - timedelta(days=6, hours=-23, minutes=1), S.RUNNING, n=1)

    execution_transition(execution_id=late.pk, to=S.SUCCESS)

    assert day not in summed()
    assert DayRollup.objects.filter(day=day).count() == 0
    assert summed() == set(AT.days) - {TODAY, day}  # the other days kept
    assert cells(admin) == expected(admin)  # the run counted, as a success
    assert day in summed()


@pytest.mark.django_db
def test_the_sweep_sums_the_ready_days_of_the_last_30_so_that_no_page_has_to(
    agents: list[Agent], admin_user: User
) -> None:
    now = timezone.now()
    today = now.astimezone(UTC).date()
    for back in (2, 3, 40):
        run(agents[0], now - timedelta(days=back), S.SUCCESS, n=back)
    waiting = run(agents[1], now - timedelta(days=3), S.PENDING_APPROVAL)

    report = sweep()

    ready = {today - timedelta(days=n) for n in range(1, 31)} - {today - timedelta(days=3)}
    if now < day_start(today) + SETTLE:  # just after midnight: yesterday has not settled
        ready.discard(today - timedelta(days=1))
    assert summed() == ready  # not the day with a run waiting, nor one older than 30 days
    assert report.summed_days == len(ready)
    assert sweep().summed_days == 0  # nothing left to sum
    execution_transition(execution_id=waiting.pk, to=S.EXPIRED)
    assert sweep().summed_days == 1
    window = panels.window(now)
    seen = panels.scope(Actor(user=admin_user))
    with CaptureQueriesContext(connection) as queries:
        panels.window_cells(scope=seen, at=window)
    assert not any("INSERT" in query["sql"] for query in queries.captured_queries)


SUMMED_DAYS = "/admin/executions/rolledupday/"  # "Summed days"


@pytest.mark.django_db
def test_an_admin_drops_a_days_sums_in_the_admin_and_the_next_reader_sums_it_again(
    client: Client, agents: list[Agent], admin_user: User
) -> None:
    spread(agents, days=5)
    admin = Actor(user=admin_user)
    cells(admin)
    day = TODAY - timedelta(days=2)
    # a run loaded later with a back-dated created_at: not in the day's sums
    run(agents[2], AT.today - timedelta(days=2, hours=-5), S.SUCCESS, n=1)
    assert cells(admin) != expected(admin)
    client.force_login(admin_user)

    page = client.get(SUMMED_DAYS)
    assert page.status_code == 200
    assert [row.day for row in page.context["cl"].result_list][:2] == [
        TODAY - timedelta(days=1),
        day,
    ]
    answer = client.post(SUMMED_DAYS, {"action": "sum_again", "_selected_action": [str(day)]})

    assert answer.status_code == 302
    assert day not in summed()
    event = AuditEvent.objects.get(action="rollup.forget")
    assert event.after == {"days": [day.isoformat()], "summed": 1}
    assert event.actor_label == admin_user.username
    assert cells(admin) == expected(admin)  # summed again, with the loaded run


@pytest.mark.django_db
def test_only_admins_see_or_drop_the_sums(client: Client, agents: list[Agent], owner: User) -> None:
    spread(agents, days=3)
    cells(Actor(user=owner))
    client.force_login(owner)  # an operator, staff

    assert client.get(SUMMED_DAYS).status_code == 403
    answer = client.post(
        SUMMED_DAYS, {"action": "sum_again", "_selected_action": [str(TODAY - timedelta(days=1))]}
    )
    assert answer.status_code == 403
    with pytest.raises(Forbidden):
        days_forget(actor=Actor(user=owner), days=[TODAY - timedelta(days=1)])
    assert TODAY - timedelta(days=1) in summed()
    assert not AuditEvent.objects.filter(action="rollup.forget").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="concurrent writers: PostgreSQL")
def test_readers_racing_for_the_same_days_sum_them_once(
    agents: list[Agent], admin_user: User
) -> None:
    spread(agents)
    admin = Actor(user=admin_user)

    results = at_once(6, lambda n: summed_days(AT.days, now=NOW))

    closed = set(AT.days) - {TODAY}
    assert results == [closed] * 6
    assert summed() == closed
    assert cells(admin) == expected(admin)  # each cell once: no row inserted twice
