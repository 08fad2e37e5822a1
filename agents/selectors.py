"""Reads of the registry, always through what the actor may see."""

from __future__ import annotations

import uuid
from typing import Any, TypedDict

from django.db.models import Q, QuerySet
from guardian.shortcuts import get_objects_for_user

from agents.models import Agent, AgentVersion
from controlplane.access import Actor, can, is_admin
from controlplane.errors import Forbidden, NotFound
from controlplane.ids import parse_uuid

# One difference between two configs ("from" is a keyword: the functional form).
ConfigChange = TypedDict("ConfigChange", {"field": str, "change": str, "from": Any, "to": Any})
# Two versions compared: their names and the differences, the changelog's first.
VersionDiff = TypedDict(
    "VersionDiff", {"from": str, "to": str, "identical": bool, "changes": list[ConfigChange]}
)


def agent_ref_q(ref: str | uuid.UUID, path: str = "") -> Q:
    """An agent named by id or by name, as a filter; ``path`` leads to the agent from the
    model filtered (``"agent__"`` for runs, requests)."""
    key = parse_uuid(ref)
    return Q(**{f"{path}name": ref}) if key is None else Q(**{f"{path}pk": key})


def agent_by_ref(ref: str | uuid.UUID) -> Agent | None:
    """The agent by id or by name, whoever asks: for callers that authenticate otherwise
    (a signed webhook, the command line without a user). Its runnable versions come along."""
    agents = Agent.objects.select_related("production_version", "staging_version")
    return agents.filter(agent_ref_q(ref)).first()


def agent_visible_qs(*, actor: Actor, perm: str = "agents.view_agent") -> QuerySet[Agent]:
    """Agents on which the actor holds ``perm``: all for admins, else by object permission.

    Guardian's queryset is built once per actor and permission (it takes ~1.5 ms, and a
    page such as the dashboard asks for it in every panel) and handed out as a fresh copy:
    it is lazy, so it reads the permissions as they are when it runs, and a copy never
    carries another caller's results."""
    if not can(actor, perm):
        return Agent.objects.none()
    if is_admin(actor.user):
        return Agent.objects.all()
    built = actor._built.get(f"agents:{perm}")
    if built is None:
        built = actor._built[f"agents:{perm}"] = get_objects_for_user(
            actor.user, perm, klass=Agent, accept_global_perms=False, with_superuser=False
        )
    return built.all()


def agent_ids_visible(actor: Actor) -> QuerySet[Any]:
    """The ids of the agents the actor may see, as a subquery (``controlplane.selectors.
    visible_agent_ids``: the audit log's filter)."""
    return agent_visible_qs(actor=actor).values("pk")


def agent_list(*, actor: Actor) -> QuerySet[Agent]:
    return (
        agent_visible_qs(actor=actor)
        .select_related("owner", "team", "production_version", "staging_version", "created_by")
        .prefetch_related("tags")
        .order_by("name")
    )


def agent_get(*, actor: Actor, ref: str, perm: str = "agents.view_agent") -> Agent:
    """The agent by id or by name. Not found if the actor may not see it (its existence is
    not disclosed); forbidden if they may see it but not use ``perm`` on it."""
    agent = agent_list(actor=actor).filter(agent_ref_q(ref)).first()
    if agent is None:
        raise NotFound(f"No agent {ref!r}.", code="agent_not_found")
    if perm != "agents.view_agent" and not can(actor, perm, agent):
        raise Forbidden("You do not have permission to perform this action.")
    return agent


def agent_for_run(*, actor: Actor, ref: str) -> Agent:
    """The agent to trigger, by id or name, with its runnable versions: one lean query (the
    trigger path is hot). Not found unless the actor may see it, as ``agent_get``."""
    agents = agent_visible_qs(actor=actor).select_related("production_version", "staging_version")
    agent = next(iter(agents.filter(agent_ref_q(ref)).order_by()), None)
    if agent is None:
        raise NotFound(f"No agent {ref!r}.", code="agent_not_found")
    return agent


def agent_versions(*, agent: Agent) -> QuerySet[AgentVersion]:
    return agent.versions.select_related("created_by", "previous_production").order_by(
        "-created_at"
    )


def agent_version_get(*, agent: Agent, version: str) -> AgentVersion:
    found = agent_versions(agent=agent).filter(version=version).first()
    if found is None:
        raise NotFound(f"Agent {agent.name!r} has no version {version}.", code="version_not_found")
    return found


def config_diff(before: Any, after: Any, path: str = "") -> list[ConfigChange]:
    """Field-by-field differences between two configs, as dotted paths.

    Objects are compared key by key; lists and scalars as whole values.
    """
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[ConfigChange] = []
        for key in sorted(set(before) | set(after)):
            where = f"{path}.{key}" if path else key
            if key not in before:
                changes.append({"field": where, "change": "added", "from": None, "to": after[key]})
            elif key not in after:
                changes.append(
                    {"field": where, "change": "removed", "from": before[key], "to": None}
                )
            else:
                changes.extend(config_diff(before[key], after[key], where))
        return changes
    if before != after:
        return [{"field": path, "change": "changed", "from": before, "to": after}]
    return []


def agent_version_diff(*, older: AgentVersion, newer: AgentVersion) -> VersionDiff:
    changes = config_diff(older.config, newer.config)
    if older.changelog != newer.changelog:
        changes.insert(
            0,
            {
                "field": "changelog",
                "change": "changed",
                "from": older.changelog,
                "to": newer.changelog,
            },
        )
    return {
        "from": older.version,
        "to": newer.version,
        "identical": not changes,
        "changes": changes,
    }
