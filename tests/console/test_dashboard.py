"""The monitoring dashboard (seed 000, "Monitoring Dashboard Spec"): each panel's figures
on a known dataset, what each user sees of them, the performance table's sort, the empty
states, and a page whose query count does not grow with agents and runs.

The figures are read from the selectors at a fixed instant (``NOW``), with runs created
around it; the page is read at the real clock, with runs created just now. alice owns
the team-a agents, bob is of team-a too, charlie (team-b) owns his own, vera views team-a.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Page, expect
from pytest_django.asserts import (
    assertContains,
    assertNotContains,
    assertRedirects,
    assertTemplateNotUsed,
    assertTemplateUsed,
)

from agents import services as agent_services
from agents.models import Agent
from approvals.models import ApprovalRequest
from console import charts, failures
from console import dashboard as panels
from controlplane.access import Actor
from controlplane.templatetags.console import latency, pct, usd
from executions.models import Execution, RolledUpDay
from schedules.services import schedule_pause
from tests import factories
from tests.browser import log_in
from tests.schedules.conftest import cron_agent

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
AT = panels.window(NOW)
S = Execution.Status


def run(
    agent: Agent,
    *,
    at: datetime | None = None,
    status: str = S.SUCCESS,
    cost: str | None = None,
    latency_ms: int | None = None,
    provider: str = "simulated",
    error_type: str = "",
) -> Execution:
    """A run row as the engine leaves it, created at ``at`` (default: now)."""
    execution = Execution.objects.create(
        agent=agent,
        agent_version=agent.production_version,
        trigger_source=Execution.Source.API,
        status=status,
        estimated_cost_usd=Decimal(cost) if cost is not None else None,
        total_latency_ms=latency_ms,
        llm_provider=provider,
        error_type=error_type,
    )
    if at is not None:  # created_at is auto_now_add: moved after the insert
        Execution.objects.filter(pk=execution.pk).update(created_at=at)
    return execution


def as_actor(user: User) -> Actor:
    return Actor(user=user)


def html(response: Any) -> str:
    return response.content.decode()


def section(response: Any, section_id: str) -> str:
    found = re.search(
        rf'<section class="card[^"]*" id="{section_id}".*?</section>', html(response), re.S
    )
    assert found is not None, f"no section #{section_id}"
    return found.group(0)


def table_agents(response: Any) -> list[str]:
    return re.findall(r'<tr data-agent="([^"]+)">', section(response, "agent-performance"))


@pytest.fixture
def alpha(owner: User) -> Agent:
    return factories.runnable_agent(owner, name="alpha", team="team-a")


@pytest.fixture
def beta(owner: User) -> Agent:
    return factories.runnable_agent(owner, name="beta", team="team-a")


@pytest.fixture
def gamma(outsider: User) -> Agent:
    """charlie's: no one of team-a may see it."""
    return factories.runnable_agent(outsider, name="gamma", team="team-b")


# --- the page -------------------------------------------------------------------------------


def test_anonymous_is_sent_to_log_in(client: Client, db: Any) -> None:
    response = client.get("/dashboard/")

    assertRedirects(response, "/login/?next=/dashboard/", fetch_redirect_response=False)


def test_home_is_the_dashboard_and_the_nav_leads_there_first(client: Client, owner: User) -> None:
    client.force_login(owner)

    assertRedirects(client.get("/"), "/dashboard/")
    page = client.get("/dashboard/")
    nav = re.search(r'<nav aria-label="Main">.*?</nav>', html(page), re.S)
    assert nav is not None
    links = re.findall(r'<li><a href="([^"]+)"', nav.group(0))
    assert links[:2] == ["/dashboard/", "/agents/"]
    assertContains(page, '<a href="/dashboard/" aria-current="page">Dashboard</a>')


@pytest.mark.parametrize(
    ("who", "names", "cost_today"),
    [
        ("owner", ["alpha", "beta"], "$0.75"),
        ("other", ["alpha", "beta"], "$0.75"),
        ("viewer", ["alpha", "beta"], "$0.75"),
        ("outsider", ["gamma"], "$100.00"),
        ("admin_user", ["alpha", "gamma", "beta"], "$100.75"),
    ],
)
def test_each_user_sees_the_figures_of_the_agents_they_may_see(
    request: Any,
    client: Client,
    alpha: Agent,
    beta: Agent,
    gamma: Agent,
    who: str,
    names: list[str],
    cost_today: str,
) -> None:
    run(alpha, cost="0.50")
    run(alpha, cost="0.25", status=S.FAILED, error_type="llm_timeout")
    run(gamma, cost="100")
    run(gamma, cost="0", status=S.FAILED, error_type="secret_gamma_error")
    client.force_login(request.getfixturevalue(who))

    response = client.get("/dashboard/")

    assert response.status_code == 200
    assert table_agents(response) == names  # most runs first, then by name
    overview = section(response, "overview")
    assert re.search(
        rf'data-counter="cost-today">.*?<span class="figure">\{cost_today}<', overview, re.S
    )
    failures = section(response, "failures")
    assert ("llm_timeout" in failures) == ("alpha" in names)
    assert ("secret_gamma_error" in failures) == ("gamma" in names)


def test_a_user_without_a_role_sees_empty_panels_not_an_error(client: Client, alpha: Agent) -> None:
    run(alpha, cost="1")
    client.force_login(factories.user("nobody"))

    response = client.get("/dashboard/")

    assert response.status_code == 200
    assert table_agents(response) == []
    assertContains(response, "No agents to show yet.")
    assertNotContains(response, "alpha")
    assertNotContains(response, 'id="approval-stats"')  # no right to see approvals


def test_an_empty_database_shows_every_empty_state(client: Client, owner: User) -> None:
    client.force_login(owner)

    response = client.get("/dashboard/")

    assert response.status_code == 200
    overview = section(response, "overview")
    assert re.search(r'data-counter="agents">.*?<span class="figure">0<', overview, re.S)
    assert re.search(r'data-counter="runs-today">.*?<span class="figure">0<', overview, re.S)
    assert "none finished yet" in overview
    assert re.search(r'data-counter="cost-today">.*?<span class="figure">\$0\.00<', overview, re.S)
    for text in [
        "No agents to show yet.",
        "No agent cost anything in the last 30 days.",
        "No provider cost anything in the last 30 days.",
        "Nothing was spent in the last 30 days.",
        "No run failed or timed out in the last 24 hours.",
        "No agent's success rate dropped.",
        "Every schedule is on time",
    ]:
        assertContains(response, text)
    assertNotContains(response, "<svg")
    assert '<dd data-stat="pending">0</dd>' in section(response, "approval-stats")


# --- overview -------------------------------------------------------------------------------


def test_overview_counts_agents_by_status_runs_today_their_success_rate_and_cost(
    owner: User, alpha: Agent, beta: Agent, gamma: Agent
) -> None:
    agent_services.agent_transition(actor=as_actor(owner), agent=beta, action="pause")
    factories.agent(owner, team="team-a")  # a draft
    deleted = factories.runnable_agent(owner, name="deleted", team="team-a")
    agent_services.agent_transition(actor=as_actor(owner), agent=deleted, action="archive")
    today = AT.today
    run(alpha, at=NOW - timedelta(hours=1), cost="0.50")
    run(alpha, at=today + timedelta(minutes=30), status=S.FAILED, cost="0.25")
    run(alpha, at=today + timedelta(hours=1), status=S.CANCELLED)  # not a success nor a failure
    run(alpha, at=today, status=S.BLOCKED)  # refused at the door: counted, not rated
    run(alpha, at=today - timedelta(seconds=1), cost="9")  # yesterday
    run(alpha, at=NOW - timedelta(days=2), status=S.RUNNING)  # running now, started before
    run(gamma, at=NOW - timedelta(hours=1), cost="100", status=S.RUNNING)  # not alice's

    overview = panels.dashboard_overview(scope=panels.scope(as_actor(owner)), at=AT)

    assert {item.status: item.count for item in overview.agents_by_status} == {
        "draft": 1,
        "active": 1,
        "paused": 1,
        "deprecated": 0,
        "archived": 1,
    }
    assert overview.agents_total == 3  # the archived one is deleted
    assert overview.runs_today == 4
    assert (overview.finished_today, overview.succeeded_today) == (2, 1)
    assert overview.success_rate_today == 50.0
    assert overview.cost_today == Decimal("0.75")
    assert overview.running_now == 1


# --- agent performance ----------------------------------------------------------------------


def test_performance_is_per_agent_over_the_30_days_with_idle_agents_and_no_archived_ones(
    owner: User, alpha: Agent, beta: Agent, gamma: Agent
) -> None:
    retired = factories.runnable_agent(owner, name="retired", team="team-a")
    agent_services.agent_transition(actor=as_actor(owner), agent=retired, action="archive")
    run(alpha, at=AT.since, cost="0.10", latency_ms=1000)  # the window's first instant
    run(alpha, at=NOW - timedelta(days=3), cost="0.20", latency_ms=3000)
    run(alpha, at=NOW, status=S.FAILED, cost="0.05", latency_ms=2000)
    run(alpha, at=NOW, status=S.BLOCKED)  # no latency, no cost
    run(alpha, at=AT.since - timedelta(seconds=1), cost="5", latency_ms=9000)  # too old
    run(gamma, at=NOW, cost="7")

    rows = panels.agent_performance(scope=panels.scope(as_actor(owner)), at=AT)

    assert [row.name for row in rows] == ["alpha", "beta"]
    alpha_row, beta_row = rows
    assert (alpha_row.runs, alpha_row.finished, alpha_row.succeeded) == (4, 3, 2)
    assert alpha_row.success_rate == pytest.approx(200 / 3)
    assert alpha_row.avg_latency_ms == pytest.approx(2000)
    assert alpha_row.cost == Decimal("0.35")
    assert (beta_row.runs, beta_row.success_rate, beta_row.avg_latency_ms) == (0, None, None)
    assert beta_row.cost == Decimal("0")


def test_an_archived_agent_with_recent_runs_keeps_its_row(owner: User, alpha: Agent) -> None:
    run(alpha, at=NOW, cost="1")
    agent_services.agent_transition(actor=as_actor(owner), agent=alpha, action="archive")

    rows = panels.agent_performance(scope=panels.scope(as_actor(owner)), at=AT)

    assert [(row.name, row.status, row.cost) for row in rows] == [
        ("alpha", "archived", Decimal("1"))
    ]


@pytest.fixture
def ranked(owner: User, alpha: Agent, beta: Agent) -> None:
    """alpha: 3 runs, 1 of 3 succeeded, 3 s, $0.30; beta: 1 run, 100%, 1 s, $0.90;
    delta: no run."""
    factories.runnable_agent(owner, name="delta", team="team-a")
    run(alpha, cost="0.10", latency_ms=3000)
    run(alpha, cost="0.10", latency_ms=3000, status=S.FAILED)
    run(alpha, cost="0.10", latency_ms=3000, status=S.TIMED_OUT)
    run(beta, cost="0.90", latency_ms=1000)


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("-runs", ["alpha", "beta", "delta"]),
        ("runs", ["delta", "beta", "alpha"]),
        ("name", ["alpha", "beta", "delta"]),
        ("-name", ["delta", "beta", "alpha"]),
        # agents without a figure come last whichever the direction
        ("-success_rate", ["beta", "alpha", "delta"]),
        ("success_rate", ["alpha", "beta", "delta"]),
        ("latency", ["beta", "alpha", "delta"]),
        ("-latency", ["alpha", "beta", "delta"]),
        ("-cost", ["beta", "alpha", "delta"]),
        ("cost", ["delta", "alpha", "beta"]),
    ],
)
def test_the_table_sorts_by_each_column(
    client: Client, owner: User, ranked: None, sort: str, order: list[str]
) -> None:
    client.force_login(owner)

    response = client.get("/dashboard/", {"sort": sort})

    assert table_agents(response) == order
    key = sort.removeprefix("-")
    column = {
        "name": "Agent",
        "runs": "Runs",
        "success_rate": "Success rate",
        "latency": "Avg latency",
        "cost": "Cost",
    }[key]
    direction = "descending" if sort.startswith("-") else "ascending"
    header = re.search(
        r'<th scope="col"[^>]* aria-sort="(\w+)">\s*<a id="sort-(\w+)"', html(response)
    )
    assert header is not None
    assert header.groups() == (direction, key)
    assert f">{column} <span aria-hidden" in section(response, "agent-performance")


@pytest.mark.parametrize(
    "sort", ["", "-", "password", "agent__owner__password", "-created_at", "cost;drop", "--cost"]
)
def test_a_sort_not_in_the_list_is_ignored(
    client: Client, owner: User, ranked: None, sort: str
) -> None:
    client.force_login(owner)

    response = client.get("/dashboard/", {"sort": sort})

    assert response.status_code == 200
    assert table_agents(response) == ["alpha", "beta", "delta"]  # the default: most runs


def test_a_header_links_to_the_other_direction_once_sorted_by_it(owner: User) -> None:
    links = {column.key: column.link for column in panels.performance_columns("-cost")}

    assert links == {
        "name": "name",
        "runs": "-runs",
        "success_rate": "-success_rate",
        "latency": "-latency",
        "cost": "cost",
    }
    assert {c.key: c.link for c in panels.performance_columns("name")}["name"] == "-name"


def test_a_sort_link_swaps_the_table_alone(client: Client, owner: User, ranked: None) -> None:
    client.force_login(owner)

    response = client.get("/dashboard/", {"sort": "-cost"}, headers={"HX-Request": "true"})

    assertTemplateUsed(response, "console/_dash_performance.html")
    assertTemplateNotUsed(response, "console/dashboard.html")
    assert table_agents(response) == ["beta", "alpha", "delta"]
    assert 'hx-get="/dashboard/?sort=cost"' in html(response)


def test_the_live_panels_are_fetched_alone_and_follow_their_feeds(
    client: Client, owner: User, alpha: Agent
) -> None:
    client.force_login(owner)
    page = html(client.get("/dashboard/"))
    assert 'data-live-refresh="executions" data-live-url="/dashboard/?panel=overview"' in page
    assert 'data-live-refresh="executions" data-live-url="/dashboard/?panel=failures"' in page
    assert 'data-live-refresh="approvals" data-live-url="/dashboard/?panel=approvals"' in page

    run(alpha, status=S.RUNNING)
    overview = client.get("/dashboard/", {"panel": "overview"}, headers={"HX-Request": "true"})
    assertTemplateUsed(overview, "console/_dash_overview.html")
    assertTemplateNotUsed(overview, "console/dashboard.html")
    assert re.search(r'data-counter="running">.*?status=running">1</a>', html(overview), re.S)
    failures = client.get("/dashboard/", {"panel": "failures"}, headers={"HX-Request": "true"})
    assertTemplateUsed(failures, "console/_dash_failures.html")
    approvals = client.get("/dashboard/", {"panel": "approvals"}, headers={"HX-Request": "true"})
    assertTemplateUsed(approvals, "approvals/_stats.html")
    # An unknown panel, or no HTMX: the whole page, never an error.
    assert client.get("/dashboard/", {"panel": "nope"}).status_code == 200


def test_the_approvals_panel_is_refused_to_a_user_who_may_not_see_approvals(
    client: Client, db: Any
) -> None:
    client.force_login(factories.user("nobody"))
    assert "approval-stats" not in html(client.get("/dashboard/"))
    refused = client.get("/dashboard/", {"panel": "approvals"}, headers={"HX-Request": "true"})
    assert refused.status_code == 403


# --- costs ----------------------------------------------------------------------------------


@pytest.fixture
def spending(owner: User, alpha: Agent, beta: Agent, gamma: Agent) -> None:
    run(alpha, at=datetime(2026, 3, 15, 10, tzinfo=UTC), cost="1.00", provider="anthropic")
    run(alpha, at=datetime(2026, 3, 13, 9, tzinfo=UTC), cost="0.25", provider="openai")
    run(beta, at=datetime(2026, 3, 13, 18, tzinfo=UTC), cost="0.50", provider="openai")
    run(beta, at=datetime(2026, 3, 14, 8, tzinfo=UTC), cost=None)  # unpriced: a run, no cost
    run(beta, at=datetime(2026, 2, 14, tzinfo=UTC), cost="2.00", provider="anthropic")
    run(beta, at=datetime(2026, 2, 13, 23, 59, 59, tzinfo=UTC), cost="7", provider="openai")
    run(alpha, at=NOW, status=S.BLOCKED, provider="")  # called no model
    run(alpha, at=NOW, cost="0.05", provider="")  # an external runtime that reported a cost
    run(gamma, at=NOW, cost="50", provider="anthropic")


def test_daily_spend_has_every_day_of_the_30_zeros_included(owner: User, spending: None) -> None:
    days = panels.daily_spend(scope=panels.scope(as_actor(owner)), at=AT)

    assert len(days) == 30
    assert (days[0].day, days[-1].day) == (date(2026, 2, 14), date(2026, 3, 15))
    assert [day.day for day in days] == [date(2026, 2, 14) + timedelta(n) for n in range(30)]
    spent = {day.day: (day.cost, day.runs) for day in days if day.runs}
    assert spent == {
        date(2026, 2, 14): (Decimal("2.00"), 1),
        date(2026, 3, 13): (Decimal("0.75"), 2),
        date(2026, 3, 14): (Decimal("0"), 1),
        date(2026, 3, 15): (Decimal("1.05"), 3),
    }
    assert all(day.cost == 0 for day in days if day.day not in spent)


def test_cost_by_provider_and_by_agent_add_up_to_the_daily_spend(
    owner: User, spending: None
) -> None:
    seen = panels.scope(as_actor(owner))

    providers = panels.cost_by_provider(scope=seen, at=AT)
    agents = panels.cost_by_agent(panels.agent_performance(scope=seen, at=AT))
    daily = panels.daily_spend(scope=seen, at=AT)

    assert [(item.label, item.cost, item.runs) for item in providers] == [
        ("anthropic", Decimal("3.00"), 2),
        ("openai", Decimal("0.75"), 2),
        ("(none)", Decimal("0.05"), 2),
        ("simulated", Decimal("0"), 1),
    ]
    assert [(item.label, item.cost) for item in agents] == [
        ("beta", Decimal("2.50")),
        ("alpha", Decimal("1.30")),
    ]
    total = Decimal("3.80")
    assert sum(item.cost for item in providers) == total
    assert sum(item.cost for item in agents) == total
    assert sum(day.cost for day in daily) == total


def test_cost_by_agent_keeps_the_ten_costliest_and_leaves_out_those_that_cost_nothing() -> None:
    rows = [
        panels.AgentRow(f"agent-{n:02}", "active", 1, 1, 1, None, Decimal(n)) for n in range(12)
    ]

    top = panels.cost_by_agent(rows)

    assert [item.label for item in top] == [f"agent-{n:02}" for n in range(11, 1, -1)]
    assert [item.label for item in panels.cost_by_agent(rows[:3])] == ["agent-02", "agent-01"]


def test_the_charts_are_inline_svg_with_a_title_and_their_numbers_in_text(
    client: Client, owner: User, alpha: Agent, beta: Agent
) -> None:
    run(alpha, cost="0.30", provider="anthropic")
    run(beta, cost="0.10", provider="openai")
    client.force_login(owner)

    page = html(client.get("/dashboard/"))

    by_agent = re.search(r'<figure class="chart" id="cost-by-agent".*?</figure>', page, re.S)
    assert by_agent is not None
    chart = by_agent.group(0)
    assert re.search(
        r'<svg class="hbars"[^>]* role="img" aria-labelledby="cost-by-agent-svg-title', chart
    )
    assert '<title id="cost-by-agent-svg-title">Cost by agent, last 30 days</title>' in chart
    assert re.findall(r'<rect class="bar" x="0" y="[\d.]+" width="([\d.]+)%"', chart) == [
        "100.00",
        "33.33",
    ]
    assert '<tr><th scope="row">alpha</th><td>$0.30</td><td>1</td></tr>' in chart
    daily = re.search(r'<figure class="chart" id="daily-spend".*?</figure>', page, re.S)
    assert daily is not None
    assert daily.group(0).count('<rect class="bar"') == 30
    assert daily.group(0).count("<tr data-day=") == 30
    assert re.search(
        r"<title id=\"daily-spend-svg-title\">Daily spend, \w+ \d+ to \w+ \d+</title>",
        daily.group(0),
    )
    assert '<figure class="chart" id="cost-by-provider"' in page
    assert "<script" not in page.split("</head>")[1]  # drawn on the server


def test_day_columns_are_as_tall_as_their_share_of_the_costliest_day() -> None:
    days = [
        panels.DaySpend(date(2026, 3, 1), Decimal("2"), 1),
        panels.DaySpend(date(2026, 3, 2), Decimal("0"), 0),
        panels.DaySpend(date(2026, 3, 3), Decimal("0.5"), 3),
    ]

    chart = charts.day_columns(days, width=300, height=100)

    assert [(c.x, c.width, c.y, c.height) for c in chart.columns] == [
        ("1.00", "98.00", "0.00", "100.00"),
        ("101.00", "98.00", "100.00", "0.00"),
        ("201.00", "98.00", "75.00", "25.00"),
    ]
    assert chart.peak is not None and chart.peak.day == date(2026, 3, 1)
    assert chart.total == Decimal("2.5")
    assert charts.day_columns([panels.DaySpend(date(2026, 3, 1), Decimal(0), 4)]).empty


# --- failures -------------------------------------------------------------------------------


def test_failures_of_the_last_24_hours_are_grouped_by_error_type(
    owner: User, alpha: Agent, beta: Agent, gamma: Agent
) -> None:
    run(alpha, at=NOW - timedelta(hours=23), status=S.FAILED, error_type="llm_timeout")
    latest = NOW - timedelta(hours=1)
    run(alpha, at=latest, status=S.FAILED, error_type="llm_timeout")
    run(beta, at=NOW - timedelta(hours=5), status=S.FAILED, error_type="llm_timeout")
    run(beta, at=NOW - timedelta(hours=2), status=S.TIMED_OUT, error_type="timeout")
    run(beta, at=NOW - timedelta(hours=3), status=S.FAILED)
    run(alpha, at=NOW - timedelta(hours=25), status=S.FAILED, error_type="llm_timeout")  # old
    run(alpha, at=NOW, status=S.CANCELLED, error_type="llm_timeout")  # not a failure
    run(alpha, at=NOW, status=S.BLOCKED, error_type="policy_deny")  # refused, not failed
    run(gamma, at=NOW, status=S.FAILED, error_type="llm_timeout")  # not alice's

    groups = failures.failure_groups(scope=panels.scope(as_actor(owner)), at=AT)

    assert [(g.error_type, g.runs, g.agents) for g in groups] == [
        ("llm_timeout", 3, 2),
        ("", 1, 1),
        ("timeout", 1, 1),
    ]
    assert groups[0].latest == latest


def test_a_failure_group_links_to_exactly_its_runs_in_the_executions_list(
    client: Client, owner: User, alpha: Agent, beta: Agent
) -> None:
    timeouts = {
        run(alpha, status=S.FAILED, error_type="llm_timeout"),
        run(beta, status=S.FAILED, error_type="llm_timeout"),
    }
    run(alpha, status=S.FAILED, error_type="llm_auth")
    run(alpha, status=S.SUCCESS)
    client.force_login(owner)

    failures = section(client.get("/dashboard/"), "failures")
    row = re.search(r'<tr data-error-type="llm_timeout">.*?href="([^"]+)"', failures, re.S)
    assert row is not None
    listing = client.get(row.group(1).replace("&amp;", "&"))

    assert listing.status_code == 200
    listed = set(re.findall(r'<tr data-execution="([0-9a-f-]+)">', html(listing)))
    assert listed == {str(execution.pk) for execution in timeouts}
    assert re.search(
        r'<tr data-error-type="llm_timeout">.*?<td class="num" data-col="runs">2</td>'
        r'\s*<td class="num" data-col="agents">2</td>',
        failures,
        re.S,
    )


# --- success rate drops ---------------------------------------------------------------------


def runs_of(agent: Agent, *, at: datetime, succeeded: int, failed: int) -> None:
    for _ in range(succeeded):
        run(agent, at=at, status=S.SUCCESS)
    for _ in range(failed):
        run(agent, at=at, status=S.FAILED)


def test_a_drop_of_20_points_over_5_runs_is_listed_and_less_is_not(owner: User) -> None:
    recent, baseline = NOW - timedelta(hours=2), NOW - timedelta(days=3)
    agents = {
        name: factories.runnable_agent(owner, name=name, team="team-a")
        for name in ["fell", "slight", "few", "fresh", "steady"]
    }
    # exactly 20 points: 100% (10 of 10) to 80% (4 of 5)
    runs_of(agents["fell"], at=baseline, succeeded=10, failed=0)
    runs_of(agents["fell"], at=recent, succeeded=4, failed=1)
    # 15 points: 95% (19 of 20) to 80%
    runs_of(agents["slight"], at=baseline, succeeded=19, failed=1)
    runs_of(agents["slight"], at=recent, succeeded=4, failed=1)
    # 100 points, but 4 finished runs: two cancelled and a blocked one do not count
    runs_of(agents["few"], at=baseline, succeeded=10, failed=0)
    runs_of(agents["few"], at=recent, succeeded=0, failed=4)
    for status in (S.CANCELLED, S.CANCELLED, S.BLOCKED):
        run(agents["few"], at=recent, status=status)
    # no baseline to fall from
    runs_of(agents["fresh"], at=recent, succeeded=0, failed=5)
    # 50% (1 of 2) to 40% (2 of 5): the 10 successes 9 days ago are outside the 7 days
    runs_of(agents["steady"], at=NOW - timedelta(days=9), succeeded=10, failed=0)
    runs_of(agents["steady"], at=baseline, succeeded=1, failed=1)
    runs_of(agents["steady"], at=recent, succeeded=2, failed=3)

    drops = failures.success_rate_drops(scope=panels.scope(as_actor(owner)), at=AT)

    assert [drop.name for drop in drops] == ["fell"]
    (fell,) = drops
    assert (fell.recent_succeeded, fell.recent_finished) == (4, 5)
    assert (fell.baseline_succeeded, fell.baseline_finished) == (10, 10)
    assert (fell.recent_rate, fell.baseline_rate, fell.points) == (80.0, 100.0, 20.0)


def test_the_page_lists_the_drop_with_both_rates(client: Client, owner: User, alpha: Agent) -> None:
    runs_of(alpha, at=timezone.now() - timedelta(days=2), succeeded=9, failed=1)
    runs_of(alpha, at=timezone.now(), succeeded=1, failed=4)
    client.force_login(owner)

    drops = section(client.get("/dashboard/"), "drops")

    assert '<tr data-agent="alpha">' in drops
    assert '20.0% <span class="muted small">(1/5)</span>' in drops
    assert '90.0% <span class="muted small">(9/10)</span>' in drops
    assert '<td class="num drop" data-col="points">\u221270.0 pts</td>' in drops


# --- approvals and schedules ----------------------------------------------------------------


def pending_request(agent: Agent, hours_ago: float) -> ApprovalRequest:
    execution = run(agent, status=S.PENDING_APPROVAL)
    request = ApprovalRequest.objects.create(
        execution=execution,
        agent=agent,
        action="execute",
        call_key="execute",
        requested_action={"input": {}},
        action_hash="0" * 64,
        expires_at=timezone.now() + timedelta(days=1),
    )
    ApprovalRequest.objects.filter(pk=request.pk).update(
        created_at=timezone.now() - timedelta(hours=hours_ago)
    )
    return request


def test_the_approval_panel_counts_pending_requests_and_the_oldest_wait(
    client: Client, owner: User, alpha: Agent, gamma: Agent
) -> None:
    pending_request(alpha, hours_ago=3.25)
    pending_request(alpha, hours_ago=1)
    pending_request(gamma, hours_ago=30)  # charlie's
    client.force_login(owner)

    stats = section(client.get("/dashboard/"), "approval-stats")

    assert '<dd data-stat="pending">2</dd>' in stats
    assert re.search(r'<dd data-stat="oldest-pending"><time [^>]+>3 h</time></dd>', stats)
    assert '<dd data-stat="average-wait">—</dd>' in stats


def test_schedules_that_need_attention_are_the_agents_lists_items(
    client: Client, owner: User
) -> None:
    paused = cron_agent(owner, name="nightly", config={"team": "team-a"})
    schedule_pause(actor=as_actor(owner), agent=paused, reason="paused by hand")
    cron_agent(owner, name="hourly", schedule="0 * * * *", config={"team": "team-a"})
    client.force_login(owner)

    schedules = section(client.get("/dashboard/"), "schedules")
    listing = re.search(r'<ul class="attention">.*?</ul>', html(client.get("/agents/")), re.S)

    assert listing is not None
    assert listing.group(0) in schedules
    assert '<a href="/agents/nightly/#schedule">nightly</a>' in schedules
    assert "paused by hand" in schedules
    assert "hourly" not in schedules


# --- formats --------------------------------------------------------------------------------


def test_money_percentages_and_latencies_read_as_people_write_them() -> None:
    assert [usd(Decimal("1234.5")), usd(Decimal("0.0031")), usd(Decimal(0)), usd(None)] == [
        "$1,234.50",
        "$0.0031",
        "$0.00",
        "—",
    ]
    assert [pct(200 / 3), pct(None)] == ["66.7%", "—"]
    assert [latency(850.4), latency(8400), latency(None)] == ["850 ms", "8.4 s", "—"]


# --- cost of the page -----------------------------------------------------------------------


def dataset(owner: User, agents: int, runs: int) -> None:
    """``agents`` agents of team-a and ``runs`` runs spread over them, the 30 days, the
    statuses, providers and error types; a pending approval and a paused schedule."""
    made = [
        factories.runnable_agent(owner, name=f"agent-{n:03}", team="team-a") for n in range(agents)
    ]
    statuses = [S.SUCCESS, S.SUCCESS, S.FAILED, S.TIMED_OUT, S.RUNNING, S.BLOCKED]
    now = timezone.now()
    rows = [
        Execution(
            agent=made[n % agents],
            agent_version=made[n % agents].production_version,
            trigger_source=Execution.Source.API,
            status=statuses[n % len(statuses)],
            estimated_cost_usd=Decimal(n % 7) / 100,
            total_latency_ms=100 * (n % 13),
            llm_provider=["anthropic", "openai", "simulated"][n % 3],
            error_type=["", "llm_timeout", "llm_auth"][n % 3],
        )
        for n in range(runs)
    ]
    Execution.objects.bulk_create(rows)
    for offset in range(1, 30):  # a run in 30 stays at now; the others spread over the days
        Execution.objects.filter(pk__in=[e.pk for e in rows[offset::30]]).update(
            created_at=now - timedelta(days=offset, hours=offset % 5)
        )
    pending_request(made[0], hours_ago=2)
    schedule_pause(actor=as_actor(owner), agent=cron_agent(owner, name="nightly"), reason="x")


# The page's queries whatever the data: session, user, the user's groups and permissions,
# guardian's permission lookup, the visible agents, which days are summed, the 30 days (their
# sums and today's runs; the overview's and the drops' figures come from these too), running
# now, the failures, the drops' days not summed, the approvals' and schedules' own.
QUERY_BOUND = 18
# The first page to need a closed day sums it: which days have open runs, their sums, the
# inserts (in a savepoint).
SUMMING = 6


@pytest.mark.parametrize(("agents", "runs"), [(5, 50), (30, 600)])
def test_the_page_costs_the_same_queries_for_5_agents_or_30(
    client: Client, owner: User, django_assert_max_num_queries: Any, agents: int, runs: int
) -> None:
    dataset(owner, agents, runs)
    client.force_login(owner)

    with django_assert_max_num_queries(QUERY_BOUND + SUMMING):
        first = client.get("/dashboard/", {"sort": "-cost"})
    assert RolledUpDay.objects.exists()  # days were summed: the next page reads their sums
    with django_assert_max_num_queries(QUERY_BOUND):
        response = client.get("/dashboard/", {"sort": "-cost"})

    assert response.status_code == 200
    for panel in ("agent-performance", "costs"):  # the same from the sums (costs: the charts)
        assert section(response, panel) == section(first, panel)
    assert len(table_agents(response)) == agents + 1  # and the cron agent
    overview = section(response, "overview")
    assert re.search(
        rf'data-counter="agents">.*?<span class="figure">{agents + 1}<', overview, re.S
    )
    # a bar per agent that cost something (10 at most), and one per provider
    assert html(response).count('<rect class="bar" x="0"') == min(agents, 10) + 3


# --- in a browser ---------------------------------------------------------------------------


@pytest.mark.browser
def test_on_a_phone_the_page_fits_and_the_table_sorts_from_the_keyboard(
    page: Page, owner: User, alpha: Agent, beta: Agent
) -> None:
    run(alpha, cost="0.10", provider="anthropic-with-a-long-provider-name")
    run(alpha, cost="0.10", status=S.FAILED, error_type="a_rather_long_error_type_name")
    run(beta, cost="0.90")
    page.set_viewport_size({"width": 375, "height": 800})
    log_in(page, "alice")

    # nothing pushes the page sideways: wide tables scroll in their own box
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    for chart in ("#cost-by-agent svg", "#cost-by-provider svg", "#daily-spend svg"):
        box = page.locator(chart).bounding_box()
        assert box is not None and box["width"] > 200 and box["x"] + box["width"] <= 375
    rows = page.locator("#agent-performance tbody tr")
    expect(rows.first).to_have_attribute("data-agent", "alpha")
    page.evaluate("window.__marker = 1")

    for _ in range(40):  # the sort links are reached with Tab alone
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "sort-cost":
            break
    else:
        pytest.fail("Tab never reached the Cost column's sort link")
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(r"/dashboard/\?sort=-cost$"))
    expect(rows.first).to_have_attribute("data-agent", "beta")
    expect(page.locator("#agent-performance th[aria-sort=descending]")).to_contain_text("Cost")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
