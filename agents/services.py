"""Writes to the agent registry. Every change is checked, locked, audited, and atomic.

Callers (API, console, admin, commands) pass validated input from ``agents.config`` and an
``Actor``; the permission rule is ``controlplane.access.can`` (``agents.access.require``;
sharing an agent with a team or a person is ``agents.access``). What other apps do when an
agent changes they subscribe to ``agent_changed`` and ``agent_tags_changed``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from agents.access import OWNER_PERMS, require, resolve_team, set_team
from agents.config import config_hash, merge_config, validated_config
from agents.models import Agent, AgentVersion, Tag
from controlplane.access import Actor, can
from controlplane.audit import audit_record
from controlplane.errors import Conflict, Invalid, NotFound
from controlplane.hooks import Hook

# In the service's transaction, the agent row locked, after its status or its production
# version changed (activate, pause, deprecate, archive; promote to production, rollback): a
# cron agent's schedule follows (``schedules``).
agent_changed: Hook[[Actor, Agent]] = Hook("agents.agent_changed")
# In the transaction that changed an agent's tags: the policy index is rebuilt after commit,
# since tag policies reach other agents now (``policies``).
agent_tags_changed: Hook[[Agent]] = Hook("agents.agent_tags_changed")


def agent_snapshot(agent: Agent) -> dict[str, Any]:
    return {
        "name": agent.name,
        "status": agent.status,
        "description": agent.description,
        "owner_email": agent.owner_email,
        "team": agent.team.name if agent.team is not None else None,
        "tags": sorted(tag.name for tag in agent.tags.all()),
        "production_version": agent.production_version.version
        if agent.production_version is not None
        else None,
        "staging_version": agent.staging_version.version
        if agent.staging_version is not None
        else None,
    }


def version_snapshot(version: AgentVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "stage": version.stage,
        "changelog": version.changelog,
        "config_hash": version.config_hash,
        "config": version.config,
    }


def _set_tags(agent: Agent, names: list[str]) -> None:
    tags = []
    for name in dict.fromkeys(names):  # keep order, drop duplicates
        tag, _ = Tag.objects.get_or_create(name=name)
        tags.append(tag)
    before = set(agent.tags.values_list("pk", flat=True))
    agent.tags.set(tags)
    if before != {tag.pk for tag in tags}:
        agent_tags_changed(agent)


def refuse_archived(agent: Agent) -> None:
    if agent.status == Agent.Status.ARCHIVED:
        raise Conflict(f"Agent {agent.name!r} is archived.", code="agent_archived")


def agent_locked(agent: Agent) -> Agent:
    """The agent row, locked until the transaction ends, freshly read."""
    return (
        Agent.objects.select_for_update(of=("self",))
        .select_related("production_version", "staging_version", "team")
        .get(pk=agent.pk)
    )


@transaction.atomic
def agent_create(*, actor: Actor, data: dict[str, Any]) -> tuple[Agent, bool]:
    """Register an agent with its first (draft) version, from seed 000's payload.

    When an agent of that name exists and the actor may change it, the payload registers a
    new draft version of it instead (``(name, version)`` is what is unique). Returns the
    agent and whether it was created.
    """
    require(actor, "agents.add_agent")
    existing = Agent.objects.filter(name=data["name"]).first()
    if existing is not None:
        if not can(actor, "agents.change_agent", existing):
            raise Conflict(
                f"An agent named {data['name']!r} already exists.",
                code="duplicate_agent_name",
                details={"name": data["name"]},
            )
        agent_version_create(
            actor=actor,
            agent=existing,
            version=data["version"],
            config=data["config"],
            changelog=data.get("changelog", ""),
        )
        return existing, False

    owner_email = data.get("owner_email") or actor.email
    if not owner_email:
        raise Invalid.field(
            "owner_email", "Required: you have no e-mail address to default to.", "required"
        )
    team = resolve_team(actor, data.get("team"))
    try:
        with transaction.atomic():
            agent = Agent.objects.create(
                name=data["name"],
                description=data.get("description", ""),
                owner=actor.user,
                owner_email=owner_email,
                created_by=actor.user,
            )
    except IntegrityError:
        raise Conflict(
            f"An agent named {data['name']!r} already exists.",
            code="duplicate_agent_name",
            details={"name": data["name"]},
        ) from None
    if actor.user is not None:
        for perm in OWNER_PERMS:
            assign_perm(perm, actor.user, agent)
    set_team(agent, team)
    _set_tags(agent, data.get("tags", []))
    agent.save()
    audit_record(actor=actor, action="agent.created", target=agent, after=agent_snapshot(agent))
    _create_version(actor, agent, data["version"], data["config"], data.get("changelog", ""))
    return agent, True


@transaction.atomic
def agent_update(*, actor: Actor, agent: Agent, data: dict[str, Any]) -> Agent:
    """Edit the agent's own fields and, if config fields are given, its draft version.

    ``data["version"]`` picks the version to edit (default: the newest draft). A version
    that has left draft is immutable: 409 ``version_immutable``.
    """
    require(actor, "agents.change_agent", agent)
    agent = agent_locked(agent)
    refuse_archived(agent)
    before = agent_snapshot(agent)
    config_change = data.get("config_change") or {}
    if config_change or "changelog" in data:
        version = _version_to_edit(agent, data.get("version"))
        agent_version_update(
            actor=actor, version=version, change=config_change, changelog=data.get("changelog")
        )
    for field in ("description", "owner_email"):
        if field in data:
            setattr(agent, field, data[field])
    if "team" in data:
        set_team(agent, resolve_team(actor, data["team"]))
    if "tags" in data:
        _set_tags(agent, data["tags"])
    agent.save()
    after = agent_snapshot(agent)
    if after != before:
        audit_record(actor=actor, action="agent.updated", target=agent, before=before, after=after)
    return agent


def _version_to_edit(agent: Agent, version: str | None) -> AgentVersion:
    if version:
        found = agent.versions.filter(version=version).first()
        if found is None:
            raise NotFound(
                f"Agent {agent.name!r} has no version {version}.", code="version_not_found"
            )
        return found
    draft = agent.versions.filter(stage=AgentVersion.Stage.DRAFT).order_by("-created_at").first()
    if draft is None:
        current = agent.production_version or agent.versions.order_by("-created_at").first()
        raise Conflict(
            f"Agent {agent.name!r} has no draft version to edit"
            + (f"; {current.version} is {current.stage} and immutable" if current else "")
            + ". Create a new draft version (POST /agents/{id}/versions).",
            code="version_immutable",
            details={"version": current.version if current else None},
        )
    return draft


@transaction.atomic
def agent_version_update(
    *,
    actor: Actor,
    version: AgentVersion,
    change: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    changelog: str | None = None,
) -> AgentVersion:
    """Edit a draft version: merge a partial ``change`` into its config, or replace it with
    a whole ``config``; either way the result is validated whole."""
    require(actor, "agents.change_agent", version.agent)
    version = (
        AgentVersion.objects.select_for_update(of=("self",))
        .select_related("agent")
        .get(pk=version.pk)
    )
    refuse_archived(version.agent)
    if not version.is_editable:
        raise Conflict(
            f"Version {version.version} of {version.agent.name!r} is {version.stage}: a version "
            "that has left draft is immutable. Create a new draft version to change it.",
            code="version_immutable",
            details={"version": version.version, "stage": version.stage},
        )
    before = version_snapshot(version)
    if config is not None or change:
        raw = config if config is not None else merge_config(version.config, change or {})
        version.config = validated_config(raw)
        version.config_hash = config_hash(version.config)
    if changelog is not None:
        version.changelog = changelog
    version.save()
    after = version_snapshot(version)
    if after != before:
        audit_record(
            actor=actor, action="agent_version.updated", target=version, before=before, after=after
        )
    return version


def _create_version(
    actor: Actor, agent: Agent, version: str, config: dict[str, Any], changelog: str
) -> AgentVersion:
    try:
        with transaction.atomic():
            created = AgentVersion.objects.create(
                agent=agent,
                version=version,
                config=config,
                config_hash=config_hash(config),
                changelog=changelog,
                created_by=actor.user,
            )
    except IntegrityError:
        raise Conflict(
            f"Agent {agent.name!r} already has version {version}.",
            code="duplicate_agent_version",
            details={"name": agent.name, "version": version},
        ) from None
    audit_record(
        actor=actor, action="agent_version.created", target=created, after=version_snapshot(created)
    )
    return created


@transaction.atomic
def agent_version_create(
    *,
    actor: Actor,
    agent: Agent,
    version: str,
    config: dict[str, Any] | None = None,
    clone_from: str | None = None,
    change: dict[str, Any] | None = None,
    changelog: str = "",
) -> AgentVersion:
    """A new draft version: from a whole ``config``, or cloned from another version with an
    optional partial ``change``."""
    require(actor, "agents.change_agent", agent)
    agent = agent_locked(agent)
    refuse_archived(agent)
    if clone_from:
        source = agent.versions.filter(version=clone_from).first()
        if source is None:
            raise NotFound(
                f"Agent {agent.name!r} has no version {clone_from} to clone.",
                code="version_not_found",
            )
        config = validated_config(merge_config(source.config, change or {}))
        changelog = changelog or f"Cloned from {clone_from}."
    if config is None:
        raise Invalid("Give a config or a version to clone from.")
    return _create_version(actor, agent, version, config, changelog)


@transaction.atomic
def agent_transition(*, actor: Actor, agent: Agent, action: str) -> Agent:
    """activate, pause, deprecate or archive (the soft delete), per ``Agent.TRANSITIONS``."""
    require(actor, "agents.delete_agent" if action == "archive" else "agents.change_agent", agent)
    agent = agent_locked(agent)
    target = agent.next_status(action)
    if target == Agent.Status.ACTIVE and agent.production_version_id is None:
        raise Conflict(
            f"Agent {agent.name!r} has no production version to run: promote one first.",
            code="no_production_version",
        )
    before = agent_snapshot(agent)
    agent.status = target
    if target == Agent.Status.ARCHIVED:
        agent.archived_at = timezone.now()
    agent.save()
    audit_record(
        actor=actor,
        action=f"agent.{action}d",
        target=agent,
        before=before,
        after=agent_snapshot(agent),
    )
    agent_changed(actor, agent)
    return agent


@transaction.atomic
def agent_version_promote(
    *, actor: Actor, agent: Agent, version: str | None = None
) -> AgentVersion:
    """One step forward: draft → staging, or staging → production.

    Without ``version``: the staging version if there is one, else the newest draft. A new
    staging version retires the previous one; a new production version retires the previous
    production version and remembers it for rollback.
    """
    require(actor, "agents.change_agent", agent)
    agent = agent_locked(agent)
    refuse_archived(agent)
    if version:
        target = agent.versions.filter(version=version).first()
        if target is None:
            raise NotFound(
                f"Agent {agent.name!r} has no version {version}.", code="version_not_found"
            )
    else:
        target = agent.staging_version or (
            agent.versions.filter(stage=AgentVersion.Stage.DRAFT).order_by("-created_at").first()
        )
        if target is None:
            raise Conflict(
                f"Agent {agent.name!r} has no draft or staging version to promote.",
                code="nothing_to_promote",
            )
    now = timezone.now()
    before_agent = agent_snapshot(agent)
    if target.stage == AgentVersion.Stage.DRAFT:
        if agent.staging_version is not None:
            _retire(actor, agent.staging_version, now)
        _set_stage(actor, target, AgentVersion.Stage.STAGING, now)
        agent.staging_version = target
    elif target.stage == AgentVersion.Stage.STAGING:
        previous = agent.production_version
        if previous is not None:
            _retire(actor, previous, now)
        target.previous_production = previous
        _set_stage(actor, target, AgentVersion.Stage.PRODUCTION, now)
        agent.production_version, agent.staging_version = target, None
    else:
        raise Conflict(
            f"Version {target.version} is {target.stage}; only draft and staging versions can "
            "be promoted"
            + (" (use rollback to go back to it)." if target.stage == "retired" else "."),
            code="invalid_transition",
            details={"version": target.version, "stage": target.stage},
        )
    agent.save()
    audit_record(
        actor=actor,
        action="agent.promoted",
        target=agent,
        before=before_agent,
        after=agent_snapshot(agent),
    )
    if target.stage == AgentVersion.Stage.PRODUCTION:
        agent_changed(actor, agent)
    return target


@transaction.atomic
def agent_rollback(*, actor: Actor, agent: Agent) -> AgentVersion:
    """Production goes back to the version it replaced; the current one is retired."""
    require(actor, "agents.change_agent", agent)
    agent = agent_locked(agent)
    current = agent.production_version
    previous = current.previous_production if current else None
    if current is None or previous is None:
        raise Conflict(
            f"Agent {agent.name!r} has no previous production version to roll back to.",
            code="no_previous_production",
        )
    now = timezone.now()
    before_agent = agent_snapshot(agent)
    _retire(actor, current, now)
    _set_stage(actor, previous, AgentVersion.Stage.PRODUCTION, now)
    agent.production_version = previous
    agent.save()
    audit_record(
        actor=actor,
        action="agent.rolled_back",
        target=agent,
        before=before_agent,
        after=agent_snapshot(agent),
    )
    agent_changed(actor, agent)
    return previous


def _set_stage(actor: Actor, version: AgentVersion, stage: str, now: datetime) -> None:
    before = {"stage": version.stage}
    version.stage = stage
    version.stage_changed_at = now
    version.save()
    audit_record(
        actor=actor,
        action=f"agent_version.{stage}",
        target=version,
        before=before,
        after={"stage": stage},
    )


def _retire(actor: Actor, version: AgentVersion, now: datetime) -> None:
    _set_stage(actor, version, AgentVersion.Stage.RETIRED, now)
