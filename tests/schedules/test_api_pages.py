"""The schedule where people look: the API (read, pause, resume, every refusal in the
error envelope), the agent page's card and its buttons, the agents list's alert, the admin."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from pytest_django.asserts import assertContains, assertNotContains

from controlplane.models import AuditEvent
from schedules.fires import schedule_fire
from schedules.models import Schedule
from tests import factories
from tests.api import assert_error, field_errors
from tests.schedules.conftest import cron_agent, set_cursor, utc

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def owner() -> Any:
    return factories.user("olga", role="operator", teams=["ops"], email="olga@company.com")


@pytest.fixture
def viewer() -> Any:
    return factories.user("vera", role="viewer", teams=["ops"])


@pytest.fixture
def agent(owner: Any) -> Any:
    return cron_agent(
        owner, "0 9 * * 1-5", zone="Europe/Paris", name="morning-report", config={"team": "ops"}
    )


def test_the_api_shows_the_schedule_in_words_with_next_and_last_fires(
    owner: Any, agent: Any
) -> None:
    set_cursor(agent, utc(2026, 5, 1, 6))  # a Friday
    schedule_fire(agent.pk, now=utc(2026, 5, 1, 7, 0, 1))  # 09:00 CEST
    body = factories.api_client(owner).get(f"/api/v1/agents/{agent.name}/schedule").json()
    assert body["description"] == "At 09:00, Monday through Friday, Europe/Paris"
    assert (body["expression"], body["timezone"]) == ("0 9 * * 1-5", "Europe/Paris")
    # Read at the real time, the May fire after the cursor is long past: beat missed it.
    assert body["state"] == "overdue" and body["overdue_since"] == "2026-05-04T07:00:00Z"
    assert body["next_fires"][:2] == ["2026-05-04T07:00:00Z", "2026-05-05T07:00:00Z"]
    [fire] = body["last_fires"]
    assert fire["fire_at"] == "2026-05-01T07:00:00Z" and fire["outcome"] == "triggered"
    assert fire["execution_status"] == "queued"
    assert fire["execution_url"] == f"/api/v1/executions/{fire['execution_id']}"
    assert (body["overlap"], body["catch_up"], body["pause_after_failures"]) == ("skip", "once", 5)


def test_an_agent_without_a_schedule_answers_404_in_the_envelope(owner: Any) -> None:
    plain = factories.runnable_agent(owner, name="plain")
    response = factories.api_client(owner).get(f"/api/v1/agents/{plain.name}/schedule")
    assert_error(response, 404, "no_schedule")


def test_pause_and_resume_through_the_api(owner: Any, agent: Any) -> None:
    client = factories.api_client(owner)
    url = f"/api/v1/agents/{agent.name}/schedule"
    paused = client.post(f"{url}/pause", {"reason": "maintenance window"}, format="json")
    assert paused.status_code == 200, paused.content
    assert paused.json()["state"] == "paused"
    assert paused.json()["paused_reason"] == "maintenance window"
    assert_error(client.post(f"{url}/pause", {}, format="json"), 409, "schedule_paused")
    resumed = client.post(f"{url}/resume")
    assert resumed.json()["state"] == "active"
    assert_error(client.post(f"{url}/resume"), 409, "schedule_not_paused")
    bad = client.post(f"{url}/pause", {"reason": "x" * 501, "why": 1}, format="json")
    assert_error(bad, 400, "validation_error")
    assert set(field_errors(bad)) == {"reason", "why"}
    assert Schedule.objects.get(agent=agent).paused is False


def test_a_viewer_reads_the_schedule_but_may_not_pause_it(viewer: Any, agent: Any) -> None:
    client = factories.api_client(viewer)
    assert client.get(f"/api/v1/agents/{agent.name}/schedule").status_code == 200
    refused = client.post(f"/api/v1/agents/{agent.name}/schedule/pause", {}, format="json")
    assert_error(refused, 403, "permission_denied")
    assert Schedule.objects.get(agent=agent).paused is False


@pytest.mark.parametrize(
    ("trigger", "field", "says"),
    [
        ({"type": "cron", "schedule": "0 9 1 * 1"}, "trigger.schedule", "not both"),
        ({"type": "cron", "schedule": "every day"}, "trigger.schedule", "five fields"),
        (
            {"type": "cron", "schedule": "0 9 * * *", "timezone": "Mars/Olympus"},
            "trigger.timezone",
            "",
        ),
        ({"type": "cron", "schedule": "0 9 * * *", "overlap": "sometimes"}, "trigger.overlap", ""),
        (
            {"type": "cron", "schedule": "0 9 * * *", "jitter_seconds": 7200},
            "trigger.jitter_seconds",
            "",
        ),
        (
            {"type": "manual", "schedule": None, "overlap": "skip"},
            "trigger.overlap",
            "Only a cron trigger",
        ),
    ],
)
def test_a_bad_cron_trigger_is_a_400_naming_the_field(
    owner: Any, agent: Any, trigger: dict[str, Any], field: str, says: str
) -> None:
    response = factories.api_client(owner).post(
        f"/api/v1/agents/{agent.name}/versions",
        {"version": "2.0.0", "clone_from": "1.0.0", "trigger": trigger},
        format="json",
    )
    error = assert_error(response, 400, "validation_error")
    messages = {item["field"]: item["message"] for item in error["details"]["validationErrors"]}
    assert field in messages, messages
    assert says in messages[field]


def test_the_agent_page_shows_the_card_and_pauses_it_in_place(
    client: Client, owner: Any, agent: Any
) -> None:
    client.force_login(owner)
    page = client.get(f"/agents/{agent.name}/")
    assertContains(page, "At 09:00, Monday through Friday, Europe/Paris")
    assertContains(page, 'data-schedule="pause"')
    assertContains(page, "No fire yet.")
    partial = client.post(f"/agents/{agent.name}/schedule", {"action": "pause"}, headers=HTMX)
    assertContains(partial, "Schedule paused")
    assertContains(partial, 'data-schedule="resume"')
    assert Schedule.objects.get(agent=agent).paused
    listing = client.get("/agents/")
    assertContains(listing, "Schedules that need you")
    assertContains(listing, "paused by olga")


def test_a_viewer_sees_no_button_and_a_forged_post_changes_nothing(
    client: Client, viewer: Any, agent: Any
) -> None:
    client.force_login(viewer)
    page = client.get(f"/agents/{agent.name}/")
    assertContains(page, "At 09:00, Monday through Friday")
    assertNotContains(page, "data-schedule=")
    events = AuditEvent.objects.count()
    forged = client.post(f"/agents/{agent.name}/schedule", {"action": "pause"}, headers=HTMX)
    assert forged.status_code == 403
    assert Schedule.objects.get(agent=agent).paused is False
    assert AuditEvent.objects.count() == events


def test_an_overdue_schedule_is_called_out_on_the_page_and_the_list(
    client: Client, owner: Any, agent: Any
) -> None:
    set_cursor(agent, utc(2026, 1, 1))  # its next fire is long past: beat is not ringing
    client.force_login(owner)
    assertContains(client.get(f"/agents/{agent.name}/"), "is celery beat running")
    listing = client.get("/agents/")
    assertContains(listing, "overdue")


def test_the_admin_lists_schedules_and_pauses_them_through_the_service(
    client: Client, agent: Any
) -> None:
    admin = factories.user("ada", role="admin")
    client.force_login(admin)
    listing = client.get("/admin/schedules/schedule/")
    assertContains(listing, "morning-report")
    detail = client.get(f"/admin/schedules/schedule/{agent.pk}/change/")
    assertContains(detail, "At 09:00, Monday through Friday, Europe/Paris")
    response = client.post(
        "/admin/schedules/schedule/",
        {"action": "pause_selected", "_selected_action": [str(agent.pk)]},
        follow=True,
    )
    assertContains(response, "Morning-report: paused.")
    assert Schedule.objects.get(agent=agent).paused
    assert AuditEvent.objects.filter(action="schedule.paused", agent_id=agent.pk).exists()
    assert client.get("/admin/schedules/schedulefire/").status_code == 200
