"""API keys: both header forms, hashed storage, expiry, revocation, and a key never
doing more than its role allows."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from controlplane import services
from controlplane.access import Actor
from controlplane.errors import Forbidden, Invalid
from controlplane.models import APIKey, AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db


def client_with(header: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    return client


def new_key(owner: Any, role: str = "operator", **kwargs: Any) -> tuple[APIKey, str]:
    return services.api_key_create(actor=Actor(user=owner), name="ci", role=role, **kwargs)


@pytest.mark.parametrize("keyword", ["Api-Key", "Bearer", "api-key", "bearer"])
def test_both_header_forms_authenticate(agent: Any, owner: Any, keyword: str) -> None:
    _, secret = new_key(owner)

    response = client_with(f"{keyword} {secret}").get(f"/api/v1/agents/{agent.pk}")

    assert response.status_code == 200


def test_only_the_hash_is_stored(owner: Any) -> None:
    key, secret = new_key(owner)

    stored = APIKey.objects.get(pk=key.pk)
    assert secret not in (stored.id, stored.hashed_key)
    assert stored.hashed_key.startswith("sha512$$")
    assert secret.startswith(f"{stored.prefix}.")
    event = AuditEvent.objects.get(action="api_key.created")
    assert secret not in str(event.after)
    assert event.after["role"] == "operator"


@pytest.mark.parametrize(
    "header",
    ["Api-Key nope.nope", "Api-Key ", "Bearer abc", "Api-Key x\x01y"],
    ids=["unknown", "empty", "garbage", "control-char"],
)
def test_bad_key_is_401(db: Any, header: str) -> None:
    response = client_with(header).get("/api/v1/agents")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_right_prefix_wrong_secret_is_401(owner: Any) -> None:
    key, _ = new_key(owner)

    response = client_with(f"Api-Key {key.prefix}.{'x' * 32}").get("/api/v1/agents")

    assert response.status_code == 401


def test_revoked_key_is_refused(owner: Any) -> None:
    key, secret = new_key(owner)
    assert client_with(f"Api-Key {secret}").get("/api/v1/agents").status_code == 200

    services.api_key_revoke(actor=Actor(user=owner), key=key)

    response = client_with(f"Api-Key {secret}").get("/api/v1/agents")
    assert response.status_code == 401
    assert AuditEvent.objects.filter(action="api_key.revoked").count() == 1
    with pytest.raises(Exception, match="already revoked"):
        services.api_key_revoke(actor=Actor(user=owner), key=key)


def test_expired_key_is_refused(owner: Any) -> None:
    key, secret = new_key(owner, expiry_date=timezone.now() + timedelta(hours=1))
    APIKey.objects.filter(pk=key.pk).update(expiry_date=timezone.now() - timedelta(seconds=1))

    response = client_with(f"Api-Key {secret}").get("/api/v1/agents")

    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_key_of_an_inactive_owner_is_refused(owner: Any) -> None:
    _, secret = new_key(owner)
    owner.is_active = False
    owner.save()

    assert client_with(f"Api-Key {secret}").get("/api/v1/agents").status_code == 401


def test_use_is_recorded(owner: Any) -> None:
    key, secret = new_key(owner)

    client_with(f"Api-Key {secret}").get("/api/v1/agents")

    key.refresh_from_db()
    assert key.last_used_at is not None


def test_viewer_key_of_an_operator_is_read_only(agent: Any, owner: Any, api_for: Any) -> None:
    client = api_for(owner, role="viewer")

    assert client.get(f"/api/v1/agents/{agent.pk}").status_code == 200
    refused = client.post(f"/api/v1/agents/{agent.pk}/promote")
    assert refused.status_code == 403
    assert (
        client.post("/api/v1/agents", factories.seed_payload(name="x"), format="json").status_code
        == 403
    )
    agent.refresh_from_db()
    assert agent.staging_version is None


def test_operator_key_of_an_operator_may_change(agent: Any, owner: Any, api_for: Any) -> None:
    assert api_for(owner).post(f"/api/v1/agents/{agent.pk}/promote").status_code == 200


def test_admin_key_of_a_non_admin_gives_only_the_owners_rights(
    agent: Any, outsider: Any, admin_user: Any
) -> None:
    admin = admin_user
    key, secret = services.api_key_create(
        actor=Actor(user=admin), owner=outsider, name="x", role="admin"
    )

    response = client_with(f"Api-Key {secret}").get(f"/api/v1/agents/{agent.pk}")

    assert key.owner == outsider
    assert response.status_code == 404


def test_non_admins_create_keys_only_for_themselves_and_their_roles(owner: Any, other: Any) -> None:
    with pytest.raises(Forbidden):
        services.api_key_create(actor=Actor(user=owner), owner=other, name="x", role="operator")
    with pytest.raises(Invalid):
        services.api_key_create(actor=Actor(user=owner), name="x", role="admin")
    with pytest.raises(Invalid):
        services.api_key_create(
            actor=Actor(user=owner), name="x", role="operator", expiry_date=timezone.now()
        )
    with pytest.raises(Forbidden):
        key, _ = new_key(other)
        services.api_key_revoke(actor=Actor(user=owner), key=key)


def test_command_prints_a_working_key(owner: Any, agent: Any) -> None:
    out, err = StringIO(), StringIO()

    call_command(
        "create_api_key",
        "--user",
        "alice",
        "--role",
        "operator",
        "--name",
        "deploy",
        "--days",
        "30",
        stdout=out,
        stderr=err,
    )

    secret = out.getvalue().strip()
    assert client_with(f"Api-Key {secret}").get(f"/api/v1/agents/{agent.pk}").status_code == 200
    key = APIKey.objects.get(name="deploy")
    assert key.expiry_date > timezone.now() + timedelta(days=29)
    assert "deploy" in err.getvalue()


def test_command_refuses_unknown_user_and_foreign_role(owner: Any) -> None:
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_key", "--user", "nobody", "--role", "viewer", "--name", "x")
    with pytest.raises(CommandError, match="grants more than you hold"):
        call_command("create_api_key", "--user", "alice", "--role", "admin", "--name", "x")
