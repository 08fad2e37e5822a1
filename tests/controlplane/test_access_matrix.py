"""The access matrix, generated from the URL conf: every API endpoint and console page, every
method it takes, asked by anonymous, admin, the owner, a viewer and an agent service of the
agent's team, and an operator and a viewer of another team.

``ROUTES`` names every route and the methods it answers; a route added to the URL conf and
not to ``ROUTES`` fails the test, so a new endpoint is in the matrix from its first commit.
What must hold for every route:

- anonymous: the API answers 401 in the error envelope, a page sends to the login page
  (the public routes excepted: health, login, the signed webhook and the token-authenticated
  report, which refuse without their own proof);
- another team (operator and viewer): every route about the team's agent — the agent, its
  versions and schedule, its run, its approval, its policy — answers 404, whatever the
  method, as if it did not exist (a write the viewer role may never make may be refused for
  the role first: 403, the same answer for every agent);
- a viewer: every write answers 403 (their own API keys excepted);
- an agent service: every write but running and cancelling runs answers 403;
- the admin and the owner read every route (no 401, 403, 404);
- the admin screens send anonymous users to the admin's login, and show another team none
  of the team's objects, in a list or on their change page;
- and after every refused request nothing stored has changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib import admin
from django.db.models import Model
from django.test import Client
from rest_framework.test import APIClient

from agents.models import Agent, AgentVersion
from approvals.models import ApprovalDecision, ApprovalRequest
from controlplane.models import APIKey, AuditEvent
from executions.models import Execution
from policies.models import Policy
from schedules.models import Schedule
from tests import factories
from tests.approvals.factories import approval_policy, pending_run
from tests.routes import fill, routes

WRITES = ("POST", "PUT", "PATCH", "DELETE")
PROJECT_APPS = {"controlplane", "integrations", "agents", "policies", "approvals", "executions"}
PROJECT_APPS |= {"schedules"}


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]
    # the route is about the team's agent (its object is hidden from other teams)
    team: bool = False
    # anonymous may call it (it checks its own proof, or shows the login)
    public: bool = False
    # writes a viewer may make (their own API keys)
    viewer_writes: bool = False
    # writes an agent service may make (run an agent, cancel a run)
    service_writes: bool = False
    # the query a GET needs to show something (the two versions of a diff)
    query: str = ""
    # a browser page under /api/ (it sends to the login page, not a 401)
    page: bool = False
    # what a reader may also get (503: not ready, no worker in this test)
    also: frozenset[int] = frozenset()


GET = ("GET",)
DIFF = "?from=1.0.0&to=1.0.0"
GET_POST = ("GET", "POST")
POST = ("POST",)

ROUTES: dict[str, Route] = {
    # console pages
    "home": Route(GET, public=True),  # a redirect to the dashboard
    "dashboard": Route(GET),
    "login": Route(GET_POST, public=True),
    "logout": Route(POST, viewer_writes=True, service_writes=True),
    "agents:list": Route(GET),
    "agents:new": Route(GET_POST),
    "agents:detail": Route(GET, team=True),
    "agents:action": Route(POST, team=True),
    "agents:diff": Route(GET, team=True, query=DIFF),
    "agents:webhook-rotate": Route(POST, team=True),
    "agents:version-new": Route(GET_POST, team=True),
    "agents:version-edit": Route(GET_POST, team=True),
    "agents:run": Route(GET_POST, team=True, service_writes=True),
    "agents:schedule": Route(POST, team=True),
    "executions:list": Route(GET),
    "executions:detail": Route(GET, team=True),
    "executions:cancel": Route(POST, team=True, service_writes=True),
    "policies:list": Route(GET),
    "policies:new": Route(GET_POST),
    "policies:dry-run": Route(GET_POST, viewer_writes=True, service_writes=True),
    "policies:edit": Route(GET_POST, team=True),
    "policies:enable": Route(POST, team=True),
    "policies:disable": Route(POST, team=True),
    "policies:delete": Route(GET_POST, team=True),
    "approvals:queue": Route(GET),
    "approvals:nav-count": Route(GET),
    "approvals:detail": Route(GET, team=True),
    "approvals:decide": Route(POST, team=True),
    "audit": Route(GET),
    "api-keys": Route(GET_POST, viewer_writes=True),
    "api-key-revoke": Route(POST, viewer_writes=True),
    "schema": Route(GET),
    "swagger-ui": Route(GET, page=True),
    # the API
    "api:health": Route(GET, public=True),
    "api:health-ready": Route(GET, public=True, also=frozenset({503})),
    "api:agent-webhook": Route(POST, team=True, public=True),
    "api:events": Route(POST, service_writes=True),
    "api:agent-execute": Route(POST, team=True, service_writes=True),
    "api:agent-schedule": Route(GET, team=True),
    "api:agent-schedule-pause": Route(POST, team=True),
    "api:agent-schedule-resume": Route(POST, team=True),
    "api:agent-list": Route(GET_POST),
    "api:agent-detail": Route(("GET", "PATCH", "DELETE"), team=True),
    "api:agent-activate": Route(POST, team=True),
    "api:agent-deprecate": Route(POST, team=True),
    "api:agent-diff": Route(GET, team=True, query=DIFF),
    "api:agent-pause": Route(POST, team=True),
    "api:agent-promote": Route(POST, team=True),
    "api:agent-rollback": Route(POST, team=True),
    "api:agent-version-detail": Route(GET, team=True),
    "api:agent-versions": Route(GET_POST, team=True),
    "api:agent-webhook-secret": Route(POST, team=True),
    "api:approval-list": Route(GET),
    "api:approval-detail": Route(GET, team=True),
    "api:approval-approve": Route(POST, team=True),
    "api:approval-reject": Route(POST, team=True),
    "api:audit-list": Route(GET),
    "api:audit-detail": Route(GET, team=True),
    "api:execution-list": Route(GET),
    "api:execution-trigger": Route(POST, service_writes=True),
    "api:execution-detail": Route(GET, team=True),
    "api:execution-cancel": Route(POST, team=True, service_writes=True),
    "api:execution-logs": Route(GET, team=True),
    "api:execution-report": Route(POST, team=True, public=True),
    "api:policy-list": Route(GET_POST),
    "api:policy-evaluate": Route(POST, viewer_writes=True, service_writes=True),
    "api:policy-detail": Route(("GET", "PATCH", "DELETE"), team=True),
    "api:policy-disable": Route(POST, team=True),
    "api:policy-enable": Route(POST, team=True),
}


def state() -> dict[str, Any]:
    """What a refused request must leave as it was."""
    tables: list[type[Model]] = [
        Agent,
        AgentVersion,
        Execution,
        ApprovalRequest,
        ApprovalDecision,
        Policy,
        APIKey,
        Schedule,
    ]
    # An API key's last use moves with every request it makes; nothing else may.
    moving = {"last_used_at"}
    return {
        model.__name__: sorted(
            str({k: v for k, v in row.items() if k not in moving})
            for row in model._default_manager.values()
        )
        for model in tables
    }


@pytest.fixture
def world(db: Any) -> dict[str, Any]:
    admin_user = factories.user("root", role="admin")
    owner = factories.user("alice", role="operator", teams=["team-a"])
    people = {
        "admin": admin_user,
        "owner": owner,
        "viewer": factories.user("vera", role="viewer", teams=["team-a"]),
        "service": factories.user("svc", role="agent-service", teams=["team-a"]),
        "outsider": factories.user("charlie", role="operator", teams=["team-b"]),
        "outside viewer": factories.user("olga", role="viewer", teams=["team-b"]),
    }
    agent = factories.runnable_agent(
        owner,
        name="runner",
        team="team-a",
        trigger={"type": "cron", "schedule": "0 9 * * *", "timezone": "UTC"},
    )
    approval_policy(admin_user, approvers=["alice@company.com"])
    approval = pending_run(agent, owner)
    policy = factories.policy(
        owner, "runner-rate", "rate_limit", {"max_executions": 5, "window_minutes": 60}, agent=agent
    )
    event = AuditEvent.objects.filter(agent_id=agent.pk).latest("pk")
    api = {who: factories.api_client(user) for who, user in people.items()}
    api["anonymous"] = APIClient()
    pages = {}
    for who, user in people.items():
        pages[who] = Client()
        pages[who].force_login(user)
    pages["anonymous"] = Client()
    own_key = APIKey.objects.filter(owner=people["viewer"]).values_list("prefix", flat=True)[0]
    values = {
        "name": agent.name,
        "ref": agent.name,
        "version": agent.versions.get().version,
        "action": "pause",
        "prefix": own_key,
        "pk:execution": str(approval.execution_id),
        "pk:executions": str(approval.execution_id),
        "pk:approval": str(approval.pk),
        "pk:approvals": str(approval.pk),
        "pk:policy": str(policy.pk),
        "pk:policies": str(policy.pk),
        "pk:audit": str(event.pk),
    }
    return {"api": api, "pages": pages, "values": values}


def ask(world: dict[str, Any], who: str, name: str, path: str, method: str) -> Any:
    clients = world["api" if path.startswith("/api/v1/") else "pages"]
    client = clients[who]
    if method == "GET":
        return client.get(path)
    return client.generic(method, path, "{}", content_type="application/json")


def every_request() -> Iterator[tuple[str, str, str]]:
    for route, name in routes():
        for method in ROUTES[name].methods:
            yield route, name, method


def test_every_route_is_in_the_matrix() -> None:
    names = {name for _, name in routes()}
    assert names - ROUTES.keys() == set(), "new routes: add them to ROUTES"
    assert ROUTES.keys() - names == set(), "routes gone: remove them from ROUTES"


def error_code(response: Any) -> str | None:
    if response.get("Content-Type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return str(body["error"]["code"])
    return None


def test_the_matrix(world: dict[str, Any]) -> None:
    before = state()
    failures: list[str] = []
    asked = 0

    def expect(who: str, name: str, method: str, path: str, wanted: set[int]) -> Any:
        nonlocal asked
        asked += 1
        response = ask(world, who, name, path, method)
        if response.status_code not in wanted:
            failures.append(f"{who} {method} {path} ({name}): {response.status_code}, not {wanted}")
        elif (
            path.startswith("/api/v1/") and response.status_code >= 400 and not error_code(response)
        ):
            failures.append(f"{who} {method} {path}: {response.status_code} outside the envelope")
        return response

    for route, name, method in every_request():
        spec = ROUTES[name]
        filled = fill(route, name, world["values"])
        assert filled is not None, route
        path = filled + (spec.query if method == "GET" else "")
        api = path.startswith("/api/") and not spec.page
        # A page refuses a write with 403, or by sending back to where the user was, with
        # why; either way nothing changes (checked at the end).
        refused = {403} if api else {302, 403}
        if not spec.public:
            response = expect("anonymous", name, method, path, {401} if api else {302})
            if not api and response.status_code == 302:
                assert response["Location"].startswith("/login/"), (path, response["Location"])
        if spec.team and not spec.public:
            expect("outsider", name, method, path, {404})
            # A write the viewer role may never make is refused for the role first (403, the
            # same for every agent, so it tells nothing of this one).
            never = method in WRITES and not spec.viewer_writes
            expect("outside viewer", name, method, path, {403, 404} if never else {404})
        if method in WRITES and not spec.public and not spec.viewer_writes:
            expect("viewer", name, method, path, refused)
        if (
            method in WRITES
            and not spec.public
            and not spec.service_writes
            and not spec.viewer_writes
        ):
            expect("service", name, method, path, refused)
        if method == "GET":
            for who in ("admin", "owner"):
                expect(who, name, method, path, {200, 302} | spec.also)

    assert asked > 200
    assert failures == [], "\n".join(failures)
    assert state() == before


def test_the_admin_screens_hide_the_team_from_other_teams(world: dict[str, Any]) -> None:
    """Every registered model's list: anonymous users are sent to the admin's login; a list
    another team may open names none of the team's objects; the change page of each of the
    team's objects is refused to them; the admin reads every list of the project's apps."""
    agent_pk = str(Agent.objects.get(name=world["values"]["name"]).pk)
    team_objects = {
        Agent: agent_pk,
        Execution: world["values"]["pk:execution"],
        ApprovalRequest: world["values"]["pk:approval"],
        Policy: world["values"]["pk:policy"],
        Schedule: agent_pk,
    }
    secrets_of_the_team = [world["values"]["name"], "runner-rate"]
    for model in admin.site._registry:
        meta = model._meta
        path = f"/admin/{meta.app_label}/{meta.model_name}/"
        response = world["pages"]["anonymous"].get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/admin/login/"), path
        for who in ("outsider", "outside viewer"):
            response = world["pages"][who].get(path)
            assert response.status_code in (200, 302, 403), (who, path, response.status_code)
            if response.status_code == 200:
                text = response.content.decode()
                for secret in secrets_of_the_team:
                    assert secret not in text, (who, path, secret)
            if model in team_objects:
                change = f"{path}{team_objects[model]}/change/"
                status = world["pages"][who].get(change).status_code
                assert status in (302, 403, 404), (who, change, status)
        if meta.app_label in PROJECT_APPS:
            assert world["pages"]["admin"].get(path).status_code == 200, path
            if model in team_objects:
                change = f"{path}{team_objects[model]}/change/"
                assert world["pages"]["admin"].get(change).status_code == 200, change
