"""Roles are groups created by a data migration, with seed 000's rights."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission

from controlplane.access import role_permissions
from controlplane.roles import ROLE_PERMISSIONS, Role, sync_role_groups

pytestmark = pytest.mark.django_db


def test_every_role_exists_with_its_permissions(db: Any) -> None:
    for role in (Role.OPERATOR, Role.VIEWER, Role.AGENT_SERVICE):
        assert role_permissions(role) == ROLE_PERMISSIONS[role]
    admin = role_permissions(Role.ADMIN)
    assert {"agents.delete_agent", "auth.change_user", "controlplane.view_auditevent"} <= admin


def test_viewer_is_read_only(db: Any) -> None:
    codenames = {
        perm.split(".")[1]
        for perm in role_permissions(Role.VIEWER)
        if not perm.startswith("controlplane.")
    }
    assert all(codename.startswith("view_") for codename in codenames)


def test_sync_keeps_what_an_admin_added(db: Any) -> None:
    viewer = Group.objects.get(name=Role.VIEWER)
    extra = Permission.objects.get(codename="add_policy")
    viewer.permissions.add(extra)

    sync_role_groups(apps)

    assert viewer.permissions.filter(pk=extra.pk).exists()
