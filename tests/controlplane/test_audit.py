"""The audit log: what is recorded, redaction, the hash chain and its tamper checks, the
append-only guards, the command, and who may read it."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from agents import services
from controlplane.access import Actor
from controlplane.audit import (
    _event_digest,
    audit_record,
    audit_seal,
    audit_seal_all,
    audit_verify,
    redact,
)
from controlplane.models import AuditChainHead, AuditEvent, AuditTarget
from tests import factories

pytestmark = pytest.mark.django_db

TABLE = AuditEvent._meta.db_table


@pytest.fixture
def history(agent: Any, owner: Any) -> list[AuditEvent]:
    """A few real events: registration, promotions, activation."""
    factories.to_production(agent, owner)
    services.agent_transition(actor=Actor(user=owner), agent=agent, action="activate")
    audit_seal_all()
    events = list(AuditEvent.objects.order_by("seq"))
    assert len(events) >= 6
    return events


@pytest.fixture
def tamper() -> Any:
    """Raw SQL as an attacker with database access would use; on PostgreSQL the append-only
    trigger is switched off first (rolled back with the test)."""

    def run(sql: str, params: list[Any] | None = None) -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
            cursor.execute(sql, params or [])
            if connection.vendor == "postgresql":
                cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")

    return run


def test_redact_hides_secrets_but_not_token_counts() -> None:
    value = {
        "webhook_secret": "s3cr3t",
        "llm": {"api_key": "sk-123", "max_tokens": 1024, "prompt_tokens": 5},
        "headers": [{"Authorization": "Bearer abc"}],
        "password": "",
        "access_token": "x",
    }

    assert redact(value) == {
        "webhook_secret": "[redacted]",
        "llm": {"api_key": "[redacted]", "max_tokens": 1024, "prompt_tokens": 5},
        "headers": [{"Authorization": "[redacted]"}],
        "password": "",
        "access_token": "[redacted]",
    }


def test_record_redacts_and_chains(owner: Any) -> None:
    first = audit_record(
        actor=Actor(user=owner),
        action="test.one",
        target=AuditTarget("thing", 1),
        after={"api_key": "sk-live-123", "name": "x"},
    )
    second = audit_record(
        actor=Actor.for_system("beat"), action="test.two", target=AuditTarget("thing", 1)
    )

    assert first.after == {"api_key": "[redacted]", "name": "x"}
    assert (first.seq, first.hash, second.seq) == (None, "", None)  # not chained yet

    assert audit_seal() == 2
    assert audit_seal() == 0
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.prev_hash == first.hash
    assert second.seq == first.seq + 1
    assert second.actor_label == "system:beat"
    head = AuditChainHead.objects.get()
    assert (head.seq, head.hash) == (second.seq, second.hash)


def test_the_chain_follows_the_order_events_were_sealed_in(owner: Any) -> None:
    early = audit_record(actor=Actor(user=owner), action="test.a", target=AuditTarget("t", 1))
    audit_seal()
    late = audit_record(actor=Actor(user=owner), action="test.b", target=AuditTarget("t", 2))
    audit_seal()

    early.refresh_from_db()
    late.refresh_from_db()
    assert late.prev_hash == early.hash
    assert audit_verify().ok


def test_beat_task_seals(owner: Any) -> None:
    from controlplane.tasks import maintenance_audit_seal

    audit_record(actor=Actor(user=owner), action="test.a", target=AuditTarget("t", 1))

    assert maintenance_audit_seal() == 1
    assert maintenance_audit_seal() == 0
    assert not AuditEvent.objects.filter(seq__isnull=True).exists()


def test_request_id_and_ip_come_from_the_request(agent: Any, owner: Any, api_for: Any) -> None:
    api_for(owner).post(
        f"/api/v1/agents/{agent.pk}/promote", HTTP_X_REQUEST_ID="trace-42", REMOTE_ADDR="10.1.2.3"
    )

    event = AuditEvent.objects.get(action="agent.promoted")
    assert event.request_id == "trace-42"
    assert event.ip == "10.1.2.3"
    assert event.actor_type == "api_key"
    assert event.actor_label.startswith("alice via api-key ")


def test_intact_chain_verifies(history: list[AuditEvent]) -> None:
    report = audit_verify()

    assert report.ok, report.message
    assert report.checked == len(history)


def test_changed_event_is_detected(history: list[AuditEvent], tamper: Any) -> None:
    victim = history[2]
    tamper(f"UPDATE {TABLE} SET actor_label = %s WHERE seq = %s", ["mallory", victim.seq])

    report = audit_verify()

    assert not report.ok
    assert report.seq == victim.seq
    assert "changed" in report.message


def test_removed_event_is_detected(history: list[AuditEvent], tamper: Any) -> None:
    victim = history[3]
    tamper(f"DELETE FROM {TABLE} WHERE seq = %s", [victim.seq])

    report = audit_verify()

    assert not report.ok
    assert report.seq == victim.seq
    assert "removed" in report.message


def test_removed_last_event_is_detected(history: list[AuditEvent], tamper: Any) -> None:
    tamper(f"DELETE FROM {TABLE} WHERE seq = %s", [history[-1].seq])

    report = audit_verify()

    assert not report.ok
    assert report.seq == history[-1].seq
    assert "removed" in report.message


def test_inserted_event_is_detected(history: list[AuditEvent], tamper: Any) -> None:
    """A forged event slipped in after #2, with a correct hash of its own and the later
    events renumbered: the event after it no longer follows it."""
    at = history[1].seq + 1
    tamper(f"UPDATE {TABLE} SET seq = seq + 1000 WHERE seq >= %s", [at])
    tamper(f"UPDATE {TABLE} SET seq = seq - 999 WHERE seq >= %s", [at + 1000])
    forged = AuditEvent(
        seq=at,
        created_at=history[1].created_at,
        actor_type="user",
        actor_label="mallory",
        action="agent.activated",
        target_type="agent",
        target_id="x",
        prev_hash=history[1].hash,
        request_id="",
        ip="",
    )
    forged.hash = _event_digest(forged)
    tamper(
        f"INSERT INTO {TABLE} (seq, created_at, actor_type, actor_label, action, target_type, "
        "target_id, target_repr, request_id, ip, prev_hash, hash) "
        "VALUES (%s, %s, 'user', 'mallory', 'agent.activated', 'agent', 'x', '', '', '', %s, %s)",
        [at, history[1].created_at, forged.prev_hash, forged.hash],
    )

    report = audit_verify()

    assert not report.ok
    assert report.seq == at
    assert f"event #{at} was inserted" in report.message


def test_removed_event_hidden_by_renumbering_is_detected(
    history: list[AuditEvent], tamper: Any
) -> None:
    victim = history[2]
    tamper(f"DELETE FROM {TABLE} WHERE seq = %s", [victim.seq])
    tamper(f"UPDATE {TABLE} SET seq = seq + 1000 WHERE seq > %s", [victim.seq])
    tamper(f"UPDATE {TABLE} SET seq = seq - 1001 WHERE seq > %s", [victim.seq + 1000])

    report = audit_verify()

    assert not report.ok
    assert report.seq == victim.seq
    assert f"event #{victim.seq} was removed" in report.message


def test_event_appended_behind_the_heads_back_is_detected(
    history: list[AuditEvent], tamper: Any
) -> None:
    last = history[-1]
    forged = AuditEvent(
        seq=last.seq + 1,
        created_at=last.created_at,
        actor_type="system",
        actor_label="system:x",
        action="agent.activated",
        target_type="agent",
        target_id="x",
        prev_hash=last.hash,
    )
    forged.hash = _event_digest(forged)
    tamper(
        f"INSERT INTO {TABLE} (seq, created_at, actor_type, actor_label, action, target_type, "
        "target_id, target_repr, request_id, ip, prev_hash, hash) "
        "VALUES (%s, %s, 'system', 'system:x', 'agent.activated', 'agent', 'x', '', '', '', %s, %s)",
        [forged.seq, forged.created_at, forged.prev_hash, forged.hash],
    )

    report = audit_verify()

    assert not report.ok
    assert "inserted" in report.message


def test_command_reports_intact_and_broken_chains(history: list[AuditEvent], tamper: Any) -> None:
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert "intact" in out.getvalue()

    tamper(f"UPDATE {TABLE} SET after = NULL WHERE seq = %s", [history[0].seq])

    with pytest.raises(CommandError, match=rf"event #{history[0].seq} was changed"):
        call_command("audit_verify")


def test_model_refuses_updates_and_deletes(history: list[AuditEvent]) -> None:
    event = history[0]
    event.action = "rewritten"

    with pytest.raises(RuntimeError):
        event.save()
    with pytest.raises(RuntimeError):
        event.delete()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_database_refuses_updates_and_deletes_on_postgresql(history: list[AuditEvent]) -> None:
    for statement in (f"UPDATE {TABLE} SET action = 'x'", f"DELETE FROM {TABLE}"):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    assert AuditEvent.objects.count() == len(history)


def test_logins_are_audited(owner: Any, client: Any) -> None:
    client.post("/login/", {"username": "alice", "password": "wrong"})
    client.post("/login/", {"username": "alice", "password": "correct horse battery staple"})

    actions = list(AuditEvent.objects.order_by("id").values_list("action", "target_repr"))
    assert ("auth.login_failed", "alice") in actions
    assert ("auth.login", "alice") in actions


# --- the API ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "sees"), [("owner", True), ("other", True), ("outsider", False)])
def test_api_lists_events_about_agents_the_user_may_see(
    request: Any, history: list[AuditEvent], api_for: Any, who: str, sees: bool
) -> None:
    response = api_for(request.getfixturevalue(who)).get(
        "/api/v1/audit", {"agent": str(history[0].agent_id)}
    )

    assert response.status_code == 200
    seqs = [event["seq"] for event in response.json()["results"]]
    if sees:
        assert seqs == sorted((event.seq for event in history if event.agent_id), reverse=True)
    else:
        assert seqs == []


def test_outsider_sees_own_actions_only(
    history: list[AuditEvent], outsider: Any, api_for: Any
) -> None:
    client = api_for(outsider)  # creating the key is an audited action of charlie's

    results = client.get("/api/v1/audit").json()["results"]

    assert [event["action"] for event in results] == ["api_key.created"]
    assert client.get(f"/api/v1/audit/{history[0].pk}").status_code == 404


def test_admin_sees_everything_and_filters(
    history: list[AuditEvent], admin_user: Any, api_for: Any
) -> None:
    client = api_for(admin_user)

    everything = client.get("/api/v1/audit", {"page_size": 200}).json()
    promoted = client.get("/api/v1/audit", {"action": "agent.promoted"}).json()["results"]
    versions = client.get("/api/v1/audit", {"action_prefix": "agent_version."}).json()["results"]
    by_alice = client.get("/api/v1/audit", {"actor": "alice"}).json()["results"]
    one = client.get(f"/api/v1/audit/{history[0].pk}").json()

    assert everything["count"] == AuditEvent.objects.count()
    assert len(promoted) == 2
    assert {event["target_type"] for event in versions} == {"agent_version"}
    assert by_alice and all("alice" in event["actor_label"] for event in by_alice)
    assert one["hash"] == history[0].hash
    bad = client.get("/api/v1/audit", {"since": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "validation_error"


def test_agent_service_role_cannot_read_the_audit_log(db: Any, api_for: Any) -> None:
    robot = factories.user("robot", role="agent-service")

    response = api_for(robot).get("/api/v1/audit")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_audit_api_is_read_only(history: list[AuditEvent], admin_user: Any, api_for: Any) -> None:
    client = api_for(admin_user)

    assert client.post("/api/v1/audit", {}, format="json").status_code == 405
    assert client.delete(f"/api/v1/audit/{history[0].pk}").status_code == 405


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_database_lets_the_sealer_add_the_link_but_not_change_the_content(owner: Any) -> None:
    event = audit_record(actor=Actor(user=owner), action="test.a", target=AuditTarget("t", 1))

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="test.forged", seq=999, hash="f" * 64)

    assert audit_seal() == 1
    event.refresh_from_db()
    assert event.action == "test.a" and event.seq is not None
