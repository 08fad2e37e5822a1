"""Roles (seed 000, "Security Considerations") are Django groups of model permissions.

A role says *what kind* of thing a user may do (view agents, change them, run them); the
per-agent object permissions (django-guardian, see ``controlplane.access``) say *which*
agents. The groups are created and kept up to date by data migrations; the permission sets
below are the single definition those migrations apply.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin: full control"
    OPERATOR = "operator", "Operator: register, version, run, approve"
    VIEWER = "viewer", "Viewer: read-only"
    AGENT_SERVICE = "agent-service", "Agent service: service account for agents"


# "app_label.codename" sets. The admin role holds every permission of the project's apps
# (and bypasses object permissions, see access.is_admin); the others are listed.
ROLE_PERMISSIONS: dict[str, set[str]] = {
    Role.OPERATOR: {
        "agents.view_agent",
        "agents.add_agent",
        "agents.change_agent",
        "agents.delete_agent",
        "agents.execute_agent",
        "agents.view_agentversion",
        "agents.add_agentversion",
        "agents.change_agentversion",
        "executions.view_execution",
        "executions.view_executionstep",
        "executions.view_executionaction",
        "executions.view_executionlog",
        "executions.cancel_execution",
        "policies.view_policy",
        "policies.add_policy",
        "policies.change_policy",
        "policies.delete_policy",
        "approvals.view_approvalrequest",
        "approvals.view_approvaldecision",
        "approvals.decide_approvalrequest",
        "controlplane.view_auditevent",
        "controlplane.view_apikey",
        "controlplane.add_apikey",
        "controlplane.change_apikey",
    },
    Role.VIEWER: {
        "agents.view_agent",
        "agents.view_agentversion",
        "executions.view_execution",
        "executions.view_executionstep",
        "executions.view_executionaction",
        "executions.view_executionlog",
        "policies.view_policy",
        "approvals.view_approvalrequest",
        "approvals.view_approvaldecision",
        "controlplane.view_auditevent",
        "controlplane.view_apikey",
        "controlplane.add_apikey",
        "controlplane.change_apikey",
    },
    Role.AGENT_SERVICE: {
        "agents.view_agent",
        "agents.execute_agent",
        "agents.view_agentversion",
        "executions.view_execution",
        "executions.view_executionlog",
        "executions.cancel_execution",
    },
}

# Apps whose every permission the admin role holds.
ADMIN_APPS = (
    "agents",
    "policies",
    "executions",
    "approvals",
    "integrations",
    "controlplane",
    "auth",
    "django_celery_beat",
)


def sync_role_groups(apps: Any) -> None:
    """Create the role groups and grant what ``ROLE_PERMISSIONS`` lists (used by migrations).

    Permissions are only added, so that an admin's own additions survive; a permission of a
    model that does not exist yet is skipped and granted by the migration that adds the model.
    """
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True  # migration state has no modules
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = models_module

    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    everything = {
        f"{app}.{codename}": pk
        for pk, app, codename in permission_model.objects.values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    for role in Role:
        group, _ = group_model.objects.get_or_create(name=role.value)
        if role == Role.ADMIN:
            wanted = [pk for name, pk in everything.items() if name.split(".")[0] in ADMIN_APPS]
        else:
            wanted = [everything[name] for name in ROLE_PERMISSIONS[role] if name in everything]
        group.permissions.add(*wanted)


def admin_emails() -> list[str]:
    """The e-mail addresses of the active admins (the admin role or superusers): who hears
    about what nobody else was named for."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    admins = users.filter(models.Q(groups__name=Role.ADMIN) | models.Q(is_superuser=True))
    return list(admins.values_list("email", flat=True).distinct())
