"""Reading runs through the API: the list (filters, cursor pages), seed 000's execution log
shape, the logs, cancelling — each with the owner / permitted / outsider trio."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.access import Actor
from executions import services
from executions.models import Execution
from executions.runtime import run_execution
from executions.trigger import TriggerRequest, execution_trigger
from tests import factories

pytestmark = pytest.mark.django_db

URL = "/api/v1/executions"

SEED_KEYS = {
    "execution_id",
    "agent_id",
    "agent_name",
    "agent_version",
    "status",
    "trigger_source",
    "trigger_user",
    "started_at",
    "completed_at",
    "llm_provider",
    "llm_model",
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "estimated_cost_usd",
    "total_latency_ms",
    "steps_executed",
    "output_summary",
    "actions_taken",
}


@pytest.fixture
def runner(owner: Any, other: Any) -> Any:
    return factories.runnable_agent(
        owner, team="team-a", llm={"simulation": {"text": "Done: all good."}}
    )


def start(agent: Any, user: Any, **kwargs: Any) -> Execution:
    return execution_trigger(
        TriggerRequest(actor=Actor(user=user), agent=agent, input={}, source="api", **kwargs)
    ).execution


@pytest.fixture
def finished(runner: Any, owner: Any) -> Execution:
    execution = start(runner, owner)
    run_execution(execution_id=str(execution.pk), attempt=1, worker="w@test")
    execution.refresh_from_db()
    return execution


@pytest.mark.parametrize(
    ("who", "sees"), [("owner", True), ("other", True), ("outsider", False), ("viewer", True)]
)
def test_list_and_detail_follow_agent_visibility(
    request: Any, finished: Execution, api_for: Any, who: str, sees: bool
) -> None:
    client = api_for(request.getfixturevalue(who))

    listed = client.get(URL).json()["results"]
    detail = client.get(f"{URL}/{finished.pk}")

    assert [item["execution_id"] for item in listed] == ([str(finished.pk)] if sees else [])
    assert detail.status_code == (200 if sees else 404)


def test_detail_has_seed_000s_shape(finished: Execution, owner: Any, api_for: Any) -> None:
    body = api_for(owner).get(f"{URL}/{finished.pk}").json()

    assert set(body) >= SEED_KEYS
    assert body["agent_name"] == "runner"
    assert body["agent_version"] == "1.0.0"
    assert body["status"] == "success"
    assert body["llm_provider"] == "simulated"
    assert body["estimated_cost_usd"] == 0
    assert body["output_summary"] == "Done: all good."
    assert body["output"] == {"text": "Done: all good."}
    [step] = body["steps_executed"]
    assert step["step"] == "llm:simulated-1"
    assert step["status"] == "success"
    assert step["tokens_used"] == body["total_tokens"] > 0
    assert body["actions_taken"] == []


def test_logs(owner: Any, outsider: Any, api_for: Any, settings: Any) -> None:
    settings.LLM_RETRY_BASE_SECONDS = settings.LLM_RETRY_MAX_SECONDS = 0.01
    flaky = factories.runnable_agent(
        owner, name="flaky", llm={"simulation": {"fail_times": 1, "fail_with": "overloaded"}}
    )
    execution = start(flaky, owner)
    run_execution(execution_id=str(execution.pk), attempt=1)

    logs = api_for(owner).get(f"{URL}/{execution.pk}/logs").json()["results"]

    assert [(line["level"], line["metadata"]["error_type"]) for line in logs] == [
        ("warn", "overloaded")
    ]
    assert {"timestamp", "level", "message", "metadata"} <= set(logs[0])
    assert api_for(outsider).get(f"{URL}/{execution.pk}/logs").status_code == 404


def test_filters_and_cursor_pages(runner: Any, owner: Any, api_for: Any) -> None:
    runs = [start(runner, owner) for _ in range(5)]
    run_execution(execution_id=str(runs[0].pk), attempt=1)
    client = api_for(owner)

    def ids(**params: Any) -> list[str]:
        response = client.get(URL, params)
        assert response.status_code == 200, response.content
        return [item["execution_id"] for item in response.json()["results"]]

    assert ids(status="success") == [str(runs[0].pk)]
    assert len(ids(status="queued,success")) == 5
    assert len(ids(agent="runner")) == len(ids(agent=str(runner.pk))) == 5
    assert ids(agent="nobody") == []
    assert len(ids(trigger_source="api", version="1.0.0")) == 5
    assert ids(created_after="2100-01-01T00:00:00Z") == []
    first = client.get(URL, {"page_size": 2}).json()
    second = client.get(first["next"]).json()
    assert [item["execution_id"] for item in first["results"] + second["results"]] == [
        str(r.pk) for r in reversed(runs)
    ][:4]
    bad = client.get(URL, {"status": "exploded"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    ("who", "status"), [("owner", 200), ("other", 200), ("outsider", 404), ("viewer", 403)]
)
def test_cancel_a_queued_run(
    request: Any, runner: Any, owner: Any, api_for: Any, who: str, status: int
) -> None:
    execution = start(runner, owner)

    response = api_for(request.getfixturevalue(who)).post(f"{URL}/{execution.pk}/cancel")

    assert response.status_code == status
    execution.refresh_from_db()
    assert execution.status == ("cancelled" if status == 200 else "queued")


def test_cancel_a_running_run_asks_it_to_stop(runner: Any, owner: Any, api_for: Any) -> None:
    execution = start(runner, owner)
    services.execution_transition(execution_id=execution.pk, to="running", expect={"queued"})

    response = api_for(owner).post(f"{URL}/{execution.pk}/cancel")

    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    assert response.json()["status"] == "running"


def test_cancel_a_finished_run_is_409(finished: Execution, owner: Any, api_for: Any) -> None:
    response = api_for(owner).post(f"{URL}/{finished.pk}/cancel")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "execution_finished"


def test_unknown_execution_is_404(db: Any, owner: Any, api_for: Any) -> None:
    client = api_for(owner)

    assert client.get(f"{URL}/00000000-0000-0000-0000-000000000000").status_code == 404
    assert client.get(f"{URL}/not-a-uuid").status_code == 404
