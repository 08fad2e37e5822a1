"""The secret sweep: a run that uses a vault credential, triggered once with an API key and
once through a webhook signed with the agent's secret, on the real web server, worker and
beat; then every page, API response and admin screen there is to read, every log line (web,
worker, beat, in-process) and every stored row (audit events included) is searched for each
secret. Each secret was used for real (the receiving server saw the credential, the runs
succeeded), and none of them is found anywhere afterwards.

The pages are every GET route of the URL conf with its arguments filled in (an agent, a
version, a run, a policy, an approval, an audit event, a key prefix), so that a new page is
swept as soon as it exists; the admin is every registered model's list, add and change page.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.test import Client
from pytest_httpserver import HTTPServer
from rest_framework.test import APIClient

from agents.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, agent_webhook_secret_rotate, sign
from approvals.models import ApprovalRequest
from controlplane.access import Actor
from controlplane.models import APIKey, AuditEvent
from executions.models import Execution
from integrations.vault import credential_save
from tests import factories
from tests.processes import asgi_server, celery_beat, celery_worker
from tests.routes import fill, routes

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

WORKER_ENV = {"TOOL_ALLOWED_PRIVATE_NETWORKS": "127.0.0.1/32", "MAINTENANCE_INTERVAL_SECONDS": "1"}
# Routes that only take a POST (a GET answers 405 and shows nothing) are still asked.
SKIP_ROUTES = {"logout"}  # a GET would end the sweeping session


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def post(url: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # loopback only
        assert response.status == 202
        answer: dict[str, Any] = json.loads(response.read())
    return answer


class Sweep:
    """Every text read, with where it came from."""

    def __init__(self, secrets_by_name: dict[str, str]) -> None:
        self.secrets = secrets_by_name
        self.hits: list[str] = []
        self.sources = 0

    def search(self, where: str, text: str) -> None:
        self.sources += 1
        for name, secret in self.secrets.items():
            if secret in text:
                at = text.index(secret)
                self.hits.append(f"{name} in {where}: …{text[max(0, at - 80) : at + 20]}…")


def test_no_secret_used_by_a_run_is_found_in_any_page_response_log_or_row(
    httpserver: HTTPServer, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    token = f"tok-sweep-{secrets.token_hex(12)}"
    httpserver.expect_request("/contacts").respond_with_json({"contacts": [{"id": 7}]})
    admin_user = factories.user("root", role="admin")
    owner = factories.user("alice", role="operator", teams=["team-a"])
    credential_save(actor=Actor(user=admin_user), name="crm", kind="http", secret={"token": token})
    agent = factories.runnable_agent(
        owner,
        name="crm-sync",
        tools=[
            {
                "name": "http_request",
                "config": {"allowed_domains": ["127.0.0.1"], "credential": "crm"},
            }
        ],
        llm={
            "simulation": {
                "turns": [
                    {
                        "tool_calls": [
                            {
                                "name": "http_request",
                                "arguments": {
                                    "url": f"http://127.0.0.1:{httpserver.port}/contacts"
                                },
                            }
                        ]
                    }
                ],
                "text": "Synced one contact.",
            }
        },
    )
    api_key = factories.api_key(owner)
    webhook_secret = agent_webhook_secret_rotate(actor=Actor(user=owner), agent=agent)
    sweep = Sweep({"credential token": token, "API key": api_key, "webhook secret": webhook_secret})

    with (
        celery_beat(env=WORKER_ENV) as beat_log,
        celery_worker(env=WORKER_ENV) as worker,
        asgi_server() as base,
    ):
        body = json.dumps({"agent": agent.name, "input": {"source": "api"}}).encode()
        by_key = post(
            f"{base}/api/v1/executions/trigger", body, {"Authorization": f"Api-Key {api_key}"}
        )
        hook_body = json.dumps({"source": "webhook"}).encode()
        timestamp = str(int(time.time()))
        by_hook = post(
            f"{base}/api/v1/hooks/agents/{agent.name}",
            hook_body,
            {
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(webhook_secret, timestamp, hook_body),
            },
        )
        runs = [by_key["execution_id"], by_hook["execution_id"]]
        wait_for(
            lambda: (
                set(Execution.objects.filter(pk__in=runs).values_list("status", flat=True))
                == {"success"}
            ),
            60,
            "both runs to succeed",
        )
        web_log = settings.VAR_DIR / f"web-{base.rsplit(':', 1)[1]}.log"
        worker_log = settings.VAR_DIR / f"worker-{worker.hostname.split('@')[0]}.log"
        # Every secret was really used: the credential reached the receiving server.
        assert [request.headers["Authorization"] for request, _ in httpserver.log] == [
            f"Bearer {token}"
        ] * 2

        for path in (web_log, worker_log, beat_log):
            sweep.search(f"log {path.name}", Path(path).read_text(errors="replace"))

    execution = Execution.objects.get(pk=runs[0])
    policy = factories.policy(
        admin_user, "sweep-limit", "rate_limit", {"max_executions": 100, "window_minutes": 60}
    )
    values = {
        "name": agent.name,
        "ref": agent.name,
        "version": "1.0.0",
        "prefix": APIKey.objects.filter(name="test").values_list("prefix", flat=True)[0],
        "action": "pause",
        "pk:execution": str(execution.pk),
        "pk:executions": str(execution.pk),
        "pk:policy": str(policy.pk),
        "pk:policies": str(policy.pk),
        "pk:approval": str(ApprovalRequest.objects.values_list("pk", flat=True).first() or ""),
        "pk:approvals": str(ApprovalRequest.objects.values_list("pk", flat=True).first() or ""),
        "pk:audit": str(AuditEvent.objects.latest("pk").pk),
    }
    pages = Client()
    pages.force_login(admin_user)
    owner_pages = Client()
    owner_pages.force_login(owner)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    asked = 0
    for route, name in routes():
        path = fill(route, name, values)
        if name in SKIP_ROUTES or path is None:
            continue
        for who, client in (("admin", pages), ("owner", owner_pages), ("API key", api)):
            response = client.get(path)
            assert response.status_code != 500, (path, who)  # 503: not ready, no worker now
            sweep.search(f"GET {path} as {who}", response.content.decode(errors="replace"))
            asked += 1
    for path in (f"/api/v1/executions/{run}" for run in runs):
        sweep.search(f"GET {path}", api.get(path).content.decode())
        sweep.search(f"GET {path}/logs", api.get(f"{path}/logs").content.decode())

    for model, _ in admin.site._registry.items():
        meta = model._meta
        base_path = f"/admin/{meta.app_label}/{meta.model_name}/"
        paths = [base_path, f"{base_path}add/"]
        first = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
        if first is not None:
            paths.append(f"{base_path}{first}/change/")
        for path in paths:
            response = pages.get(path)
            assert response.status_code != 500, path
            sweep.search(f"admin GET {path}", response.content.decode(errors="replace"))
            asked += 1

    for model in apps.get_models():
        rows = list(model._default_manager.values())
        sweep.search(f"rows of {model._meta.label}", json.dumps(rows, default=str))
    sweep.search("in-process log", "\n".join(record.getMessage() for record in caplog.records))

    assert asked > 150  # every route, as three readers, and the admin
    assert AuditEvent.objects.filter(action="credential.used").count() == 2
    assert sweep.hits == [], "\n".join(sweep.hits)
