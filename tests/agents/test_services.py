"""The registry's services: the promote / rollback state machine, immutability, team
sharing, and races settled by the database under real concurrency."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from guardian.shortcuts import get_perms

from agents import access, services
from agents.api.serializers import AgentCreateSerializer
from agents.models import Agent, AgentVersion
from controlplane.access import Actor
from controlplane.audit import audit_seal_all, audit_verify
from controlplane.errors import Conflict, Forbidden, Invalid, ServiceError
from controlplane.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db


def stages(agent: Agent) -> dict[str, str]:
    return dict(agent.versions.values_list("version", "stage"))


def new_version(agent: Agent, by: Any, version: str, clone_from: str = "1.2.0") -> AgentVersion:
    return services.agent_version_create(
        actor=Actor(user=by), agent=agent, version=version, clone_from=clone_from
    )


def test_promote_walks_draft_staging_production(agent: Agent, owner: Any) -> None:
    actor = Actor(user=owner)

    staged = services.agent_version_promote(actor=actor, agent=agent)
    agent.refresh_from_db()
    assert (staged.stage, agent.staging_version, agent.production_version) == (
        "staging",
        staged,
        None,
    )

    produced = services.agent_version_promote(actor=actor, agent=agent)
    agent.refresh_from_db()
    assert produced.pk == staged.pk
    assert (produced.stage, agent.staging_version, agent.production_version) == (
        "production",
        None,
        produced,
    )
    assert produced.previous_production is None
    assert produced.stage_changed_at is not None


def test_new_production_retires_the_previous_and_remembers_it(agent: Agent, owner: Any) -> None:
    factories.to_production(agent, owner)
    new_version(agent, owner, "1.3.0")

    factories.to_production(agent, owner, "1.3.0")

    agent.refresh_from_db()
    assert stages(agent) == {"1.2.0": "retired", "1.3.0": "production"}
    assert agent.production_version.previous_production.version == "1.2.0"


def test_new_staging_version_retires_the_old_staging_one(agent: Agent, owner: Any) -> None:
    actor = Actor(user=owner)
    services.agent_version_promote(actor=actor, agent=agent)
    new_version(agent, owner, "1.3.0")

    services.agent_version_promote(actor=actor, agent=agent, version="1.3.0")

    agent.refresh_from_db()
    assert stages(agent) == {"1.2.0": "retired", "1.3.0": "staging"}
    assert agent.staging_version.version == "1.3.0"


def test_promote_without_a_version_prefers_staging_then_newest_draft(
    agent: Agent, owner: Any
) -> None:
    actor = Actor(user=owner)
    new_version(agent, owner, "1.3.0")  # two drafts: 1.2.0 and the newer 1.3.0

    first = services.agent_version_promote(actor=actor, agent=agent)
    second = services.agent_version_promote(actor=actor, agent=agent)

    assert (first.version, first.stage) == ("1.3.0", "staging")
    assert (second.version, second.stage) == ("1.3.0", "production")


def test_nothing_to_promote_is_a_conflict(agent: Agent, owner: Any) -> None:
    factories.to_production(agent, owner)

    with pytest.raises(Conflict) as caught:
        services.agent_version_promote(actor=Actor(user=owner), agent=agent)

    assert caught.value.code == "nothing_to_promote"


def test_rollback_walks_back_through_production_history(agent: Agent, owner: Any) -> None:
    actor = Actor(user=owner)
    factories.to_production(agent, owner)
    for version in ("1.3.0", "1.4.0"):
        new_version(agent, owner, version)
        factories.to_production(agent, owner, version)

    assert services.agent_rollback(actor=actor, agent=agent).version == "1.3.0"
    assert services.agent_rollback(actor=actor, agent=agent).version == "1.2.0"
    with pytest.raises(Conflict) as caught:
        services.agent_rollback(actor=actor, agent=agent)

    assert caught.value.code == "no_previous_production"
    agent.refresh_from_db()
    assert agent.production_version.version == "1.2.0"
    assert stages(agent) == {"1.2.0": "production", "1.3.0": "retired", "1.4.0": "retired"}


def test_rollback_then_promote_keeps_a_consistent_history(agent: Agent, owner: Any) -> None:
    actor = Actor(user=owner)
    factories.to_production(agent, owner)
    new_version(agent, owner, "1.3.0")
    factories.to_production(agent, owner, "1.3.0")
    services.agent_rollback(actor=actor, agent=agent)
    new_version(agent, owner, "1.4.0")

    factories.to_production(agent, owner, "1.4.0")
    back = services.agent_rollback(actor=actor, agent=agent)

    assert back.version == "1.2.0"


def test_retired_and_production_versions_cannot_be_promoted(agent: Agent, owner: Any) -> None:
    actor = Actor(user=owner)
    factories.to_production(agent, owner)

    with pytest.raises(Conflict) as caught:
        services.agent_version_promote(actor=actor, agent=agent, version="1.2.0")

    assert caught.value.code == "invalid_transition"


def test_a_version_that_left_draft_is_immutable(agent: Agent, owner: Any) -> None:
    actor = Actor(user=owner)
    services.agent_version_promote(actor=actor, agent=agent)
    version = agent.versions.get()
    before = (version.config, version.changelog, version.config_hash)

    with pytest.raises(Conflict) as caught:
        services.agent_version_update(actor=actor, version=version, changelog="sneaky")

    assert caught.value.code == "version_immutable"
    version.refresh_from_db()
    assert (version.config, version.changelog, version.config_hash) == before


def test_editing_a_draft_revalidates_and_rehashes(agent: Agent, owner: Any) -> None:
    version = agent.versions.get()
    old_hash = version.config_hash

    services.agent_version_update(
        actor=Actor(user=owner), version=version, change={"allowed_destinations": {"email": True}}
    )

    version.refresh_from_db()
    assert version.config["allowed_destinations"]["email"] is True
    assert version.config["allowed_destinations"]["slack"] is True
    assert version.config_hash != old_hash


def test_agent_status_machine(agent: Agent, owner: Any) -> None:
    actor = Actor(user=owner)
    factories.to_production(agent, owner)

    def move(action: str) -> str:
        return services.agent_transition(actor=actor, agent=agent, action=action).status

    assert move("activate") == "active"
    assert move("pause") == "paused"
    assert move("activate") == "active"
    assert move("deprecate") == "deprecated"
    with pytest.raises(Conflict):
        move("activate")
    assert move("archive") == "archived"
    for action in ("activate", "pause", "deprecate", "archive"):
        with pytest.raises(Conflict) as caught:
            move(action)
        assert caught.value.code == "invalid_transition"


def test_archived_agent_refuses_changes(agent: Agent, owner: Any) -> None:
    actor = Actor(user=owner)
    services.agent_transition(actor=actor, agent=agent, action="archive")

    for call in (
        lambda: services.agent_version_promote(actor=actor, agent=agent),
        lambda: new_version(agent, owner, "2.0.0"),
        lambda: services.agent_update(actor=actor, agent=agent, data={"description": "x"}),
    ):
        with pytest.raises(Conflict) as caught:
            call()
        assert caught.value.code == "agent_archived"


def test_owner_and_team_get_object_permissions(
    agent: Agent, owner: Any, other: Any, outsider: Any
) -> None:
    assert set(get_perms(owner, agent)) == {
        "view_agent",
        "change_agent",
        "delete_agent",
        "execute_agent",
    }
    assert set(get_perms(other, agent)) == {"view_agent", "change_agent", "execute_agent"}
    assert get_perms(outsider, agent) == []


def test_changing_the_team_moves_the_permissions(agent: Agent, owner: Any, other: Any) -> None:
    owner.groups.add(Group.objects.get_or_create(name="team-c")[0])
    newcomer = factories.user("dan", role="operator", teams=["team-c"])

    services.agent_update(actor=Actor(user=owner), agent=agent, data={"team": "team-c"})

    assert get_perms(other, agent) == []
    assert "change_agent" in get_perms(newcomer, agent)


def test_sharing_with_a_group_you_are_not_in_is_refused(agent: Agent, owner: Any) -> None:
    Group.objects.get_or_create(name="finance")

    with pytest.raises(Invalid) as caught:
        services.agent_update(actor=Actor(user=owner), agent=agent, data={"team": "finance"})

    assert caught.value.details["validationErrors"][0]["field"] == "team"
    agent.refresh_from_db()
    assert agent.team.name == "team-a"


def test_viewer_key_of_an_operator_cannot_change(agent: Agent, owner: Any) -> None:
    from controlplane.models import APIKey

    key, _ = APIKey.objects.create_key(name="ro", owner=owner, role="viewer")

    with pytest.raises(Forbidden):
        services.agent_version_promote(actor=Actor(user=owner, api_key=key), agent=agent)


def test_services_write_audit_events_with_before_and_after(agent: Agent, owner: Any) -> None:
    factories.to_production(agent, owner)
    services.agent_transition(actor=Actor(user=owner), agent=agent, action="activate")

    event = AuditEvent.objects.get(action="agent.activated")
    assert event.before["status"] == "draft"
    assert event.after["status"] == "active"
    assert event.actor_label == "alice"
    assert event.agent_id == agent.pk
    promoted = AuditEvent.objects.filter(action="agent_version.production").get()
    assert promoted.before == {"stage": "staging"}
    assert audit_verify().ok


# --- races, with real threads and real connections ------------------------------------------


def run_concurrently(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released at once; results or exceptions."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def target(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as exc:  # collected and asserted on by the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_of_one_name_and_version_create_exactly_one() -> None:
    owner = factories.user("alice", role="operator")
    serializer = AgentCreateSerializer(data=factories.seed_payload())
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data

    results = run_concurrently(
        8, lambda _: services.agent_create(actor=Actor(user=owner), data=data)
    )

    created = [result for result in results if isinstance(result, tuple)]
    refused = [result for result in results if isinstance(result, Conflict)]
    assert len(created) == 1, results
    assert len(refused) == 7, results
    assert {error.code for error in refused} <= {"duplicate_agent_name", "duplicate_agent_version"}
    assert Agent.objects.count() == 1
    assert AgentVersion.objects.count() == 1
    assert AuditEvent.objects.filter(action="agent.created").count() == 1
    assert audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_concurrent_promotions_promote_once() -> None:
    owner = factories.user("alice", role="operator")
    agent = factories.agent(owner)
    factories.to_production(agent, owner)
    new_version(agent, owner, "1.3.0")
    services.agent_version_promote(actor=Actor(user=owner), agent=agent, version="1.3.0")

    results = run_concurrently(
        6, lambda _: services.agent_version_promote(actor=Actor(user=owner), agent=agent)
    )

    promoted = [result for result in results if isinstance(result, AgentVersion)]
    refused = [result for result in results if isinstance(result, ServiceError)]
    assert len(promoted) == 1, results
    assert {error.code for error in refused} == {"nothing_to_promote"}
    agent.refresh_from_db()
    assert stages(agent) == {"1.2.0": "retired", "1.3.0": "production"}
    assert agent.production_version.previous_production.version == "1.2.0"
    assert (
        AuditEvent.objects.filter(
            action="agent_version.production", target_repr__endswith="1.3.0"
        ).count()
        == 1
    )
    assert audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_concurrent_changes_keep_the_audit_chain_intact() -> None:
    owner = factories.user("alice", role="operator")
    agent = factories.agent(owner)

    results = run_concurrently(
        10,
        lambda index: services.agent_update(
            actor=Actor(user=owner), agent=agent, data={"description": f"edit {index}"}
        ),
    )

    assert all(isinstance(result, Agent) for result in results), results
    audit_seal_all()
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert AuditEvent.objects.filter(action="agent.updated").count() == 10
    assert audit_verify().ok


def test_a_role_is_not_a_team(agent: Agent, owner: Any) -> None:
    with pytest.raises(Invalid) as caught:
        services.agent_update(actor=Actor(user=owner), agent=agent, data={"team": "operator"})

    assert caught.value.details["validationErrors"][0]["code"] == "role_not_team"


def test_owner_shares_and_unshares_one_user_audited(
    agent: Agent, owner: Any, outsider: Any
) -> None:
    access.agent_access_set(
        actor=Actor(user=owner), agent=agent, user=outsider, perms=["view_agent", "execute_agent"]
    )
    assert set(get_perms(outsider, agent)) == {"view_agent", "execute_agent"}

    access.agent_access_set(actor=Actor(user=owner), agent=agent, user=outsider, perms=[])

    assert get_perms(outsider, agent) == []
    changes = [
        (e.before["perms"], e.after["perms"])
        for e in AuditEvent.objects.filter(action="agent.access_changed").order_by("id")
    ]
    assert changes == [([], ["execute_agent", "view_agent"]), (["execute_agent", "view_agent"], [])]


def test_only_the_owner_may_share(agent: Agent, other: Any, outsider: Any) -> None:
    with pytest.raises(Forbidden):
        access.agent_access_set(
            actor=Actor(user=other), agent=agent, user=outsider, perms=["view_agent"]
        )

    assert get_perms(outsider, agent) == []
