"""Who may do what to an agent: the permission check of the agent services, the team an
agent is shared with, and the grants of one user or group (django-guardian object
permissions, the same ones ``controlplane.access.can`` reads)."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.models import Group, User
from django.db import transaction
from guardian.shortcuts import assign_perm, get_group_perms, get_user_perms, remove_perm

from agents.models import Agent
from controlplane.access import Actor, actor_is_admin, can
from controlplane.audit import audit_record
from controlplane.errors import Forbidden, Invalid
from controlplane.roles import Role

OWNER_PERMS = ("view_agent", "change_agent", "delete_agent", "execute_agent")
TEAM_PERMS = ("view_agent", "change_agent", "execute_agent")


def require(actor: Actor, perm: str, agent: Agent | None = None) -> None:
    """403 unless the actor may use ``perm`` (on ``agent``)."""
    if not can(actor, perm, agent):
        raise Forbidden("You do not have permission to perform this action.")


def resolve_team(actor: Actor, name: str | None) -> Group | None:
    """The group named as an agent's team: one the actor belongs to, unless an admin."""
    if not name:
        return None
    if name in Role.values:
        raise Invalid.field("team", f"{name!r} is a role, not a team.", "role_not_team")
    group = Group.objects.filter(name=name).first()
    if group is None:
        raise Invalid.field("team", f"No group named {name!r}.", "not_found")
    # The callers checked the actor's right first (``require``): there is a user.
    user = cast(User, actor.user)
    if not actor_is_admin(actor) and not user.groups.filter(pk=group.pk).exists():
        raise Invalid.field(
            "team", "You can only share an agent with a group you belong to.", "not_member"
        )
    return group


def set_team(agent: Agent, team: Group | None) -> None:
    """Share the agent with ``team`` (its members may see, change and run it) instead of the
    team it had."""
    if agent.team_id and (team is None or team.pk != agent.team_id):
        for perm in TEAM_PERMS:
            remove_perm(perm, agent.team, agent)
    agent.team = team
    if team is not None:
        for perm in TEAM_PERMS:
            assign_perm(perm, team, agent)


@transaction.atomic
def agent_access_set(
    *,
    actor: Actor,
    agent: Agent,
    perms: list[str],
    user: User | None = None,
    group: Group | None = None,
) -> None:
    """Give one user or group exactly ``perms`` (codenames) on the agent. Sharing is the
    owner's right: it takes the right to delete the agent."""
    require(actor, "agents.delete_agent", agent)
    holder: User | Group
    if user is not None:
        holder, who = user, {"user": user.get_username()}
    elif group is not None:
        holder, who = group, {"group": group.name}
    else:
        raise Invalid("Name a user or a group.")
    current = set(
        get_user_perms(user, agent) if user is not None else get_group_perms(group, agent)
    )
    wanted = set(perms)
    for perm in current - wanted:
        remove_perm(perm, holder, agent)
    for perm in wanted - current:
        assign_perm(perm, holder, agent)
    if wanted != current:
        audit_record(
            actor=actor,
            action="agent.access_changed",
            target=agent,
            before={**who, "perms": sorted(current)},
            after={**who, "perms": sorted(wanted)},
        )
