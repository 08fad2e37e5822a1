"""The credential vault: encryption at rest, key rotation, audited use, and the admin that
never shows a secret back."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from controlplane.access import Actor
from controlplane.errors import Forbidden
from controlplane.models import AuditEvent
from integrations.models import Credential
from integrations.vault import (
    Secret,
    VaultError,
    credential_delete,
    credential_save,
    credential_use,
    decrypt,
    encrypt,
    vault_rotate,
)
from tests import factories

pytestmark = pytest.mark.django_db

SECRET_VALUE = "xoxb-very-secret-4f2a9c"
OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


@pytest.fixture
def keys(settings: Any) -> Any:
    settings.VAULT_KEYS = [OLD_KEY]
    return settings


@pytest.fixture
def admin_actor(admin_user: Any) -> Actor:
    return Actor(user=admin_user)


def save(actor: Actor, name: str = "slack", secret: dict[str, Any] | None = None) -> Credential:
    return credential_save(
        actor=actor,
        name=name,
        kind="slack",
        secret={"token": SECRET_VALUE} if secret is None else secret,
        config={"base_url": "https://slack.example.com/api"},
        description="Bot for #alerts",
    )


def raw_row(name: str) -> tuple[Any, ...]:
    """The stored row as the database holds it, every column."""
    table = Credential._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE name = %s", [name])
        return cursor.fetchone()


def all_audit_text() -> str:
    return json.dumps(
        list(AuditEvent.objects.values("action", "target_repr", "before", "after")), default=str
    )


# --- encryption ---------------------------------------------------------------------------


def test_encrypt_and_decrypt_round_trip(keys: Any) -> None:
    token = encrypt({"token": SECRET_VALUE, "nested": {"n": 1}})

    assert SECRET_VALUE not in token
    assert decrypt(token) == {"token": SECRET_VALUE, "nested": {"n": 1}}


def test_a_wrong_key_cannot_decrypt(keys: Any) -> None:
    token = encrypt({"token": SECRET_VALUE})
    keys.VAULT_KEYS = [NEW_KEY]

    with pytest.raises(VaultError, match="cannot be decrypted"):
        decrypt(token)


def test_an_invalid_key_is_a_vault_error(keys: Any) -> None:
    keys.VAULT_KEYS = ["not-a-fernet-key"]

    with pytest.raises(VaultError, match="not a valid Fernet key"):
        encrypt({"a": 1})


def test_secret_repr_never_shows_the_values() -> None:
    secret = Secret("slack", "slack", {"token": SECRET_VALUE}, {})

    assert SECRET_VALUE not in repr(secret)
    assert SECRET_VALUE not in str(secret)


# --- saving -------------------------------------------------------------------------------


def test_save_stores_only_ciphertext_and_audits_without_the_secret(
    keys: Any, admin_actor: Actor
) -> None:
    credential = save(admin_actor)

    row = raw_row("slack")
    assert SECRET_VALUE not in json.dumps(row, default=str)
    assert decrypt(credential.ciphertext) == {"token": SECRET_VALUE}
    event = AuditEvent.objects.get(action="credential.saved")
    assert event.after["name"] == "slack"
    assert SECRET_VALUE not in all_audit_text()


def test_save_without_secret_keeps_the_stored_one(keys: Any, admin_actor: Actor) -> None:
    save(admin_actor)

    credential_save(actor=admin_actor, name="slack", kind="slack", secret=None, config={"a": 1})

    stored = Credential.objects.get(name="slack")
    assert decrypt(stored.ciphertext) == {"token": SECRET_VALUE}
    assert stored.config == {"a": 1}


def test_only_admins_manage_credentials(keys: Any, owner: Any) -> None:
    with pytest.raises(Forbidden):
        save(Actor(user=owner))
    with pytest.raises(Forbidden):
        save(Actor.for_system("worker"))

    assert not Credential.objects.exists()


# --- use ----------------------------------------------------------------------------------


def test_use_decrypts_and_audits_who_and_why(keys: Any, admin_actor: Actor) -> None:
    save(admin_actor)

    secret = credential_use(name="slack", purpose="tool:slack_notification", execution_id="exec-1")

    assert secret.values == {"token": SECRET_VALUE}
    assert secret.config == {"base_url": "https://slack.example.com/api"}
    event = AuditEvent.objects.get(action="credential.used")
    assert event.actor_label == "system:vault"
    assert event.after == {"purpose": "tool:slack_notification", "execution_id": "exec-1"}
    assert Credential.objects.get(name="slack").last_used_at is not None
    assert SECRET_VALUE not in all_audit_text()


# --- rotation -----------------------------------------------------------------------------


def test_rotation_with_two_keys(keys: Any, admin_actor: Actor) -> None:
    save(admin_actor, "slack")
    save(admin_actor, "n8n", {"api_key": "n8n-key"})
    before = raw_row("slack")

    keys.VAULT_KEYS = [NEW_KEY, OLD_KEY]  # the new key first, the old one still there
    assert credential_use(name="slack", purpose="test").values == {"token": SECRET_VALUE}

    assert vault_rotate(actor=Actor.for_system("manage.py")) == 2

    assert raw_row("slack") != before
    keys.VAULT_KEYS = [NEW_KEY]  # the old key dropped: everything still reads
    assert credential_use(name="slack", purpose="test").values == {"token": SECRET_VALUE}
    assert credential_use(name="n8n", purpose="test").values == {"api_key": "n8n-key"}
    event = AuditEvent.objects.get(action="vault.rotated")
    assert (event.actor_label, event.after) == ("system:manage.py", {"reencrypted": 2})
    assert SECRET_VALUE not in all_audit_text()


def test_without_rotation_dropping_the_old_key_loses_access(keys: Any, admin_actor: Actor) -> None:
    save(admin_actor)
    keys.VAULT_KEYS = [NEW_KEY]

    with pytest.raises(VaultError):
        credential_use(name="slack", purpose="test")
    with pytest.raises(VaultError, match="'slack' cannot be decrypted"):
        vault_rotate(actor=Actor.for_system("manage.py"))


def test_rotate_is_for_the_system_and_admins_only(
    keys: Any, admin_actor: Actor, owner: Any
) -> None:
    save(admin_actor)

    assert vault_rotate(actor=admin_actor) == 1
    for refused in (Actor(user=owner), Actor()):
        with pytest.raises(Forbidden):
            vault_rotate(actor=refused)


def test_vault_rotate_command(keys: Any, admin_actor: Actor) -> None:
    save(admin_actor)
    keys.VAULT_KEYS = [NEW_KEY, OLD_KEY]
    out = StringIO()

    call_command("vault_rotate", stdout=out)

    assert "Re-encrypted 1 credential(s)." in out.getvalue()
    keys.VAULT_KEYS = [NEW_KEY]
    assert decrypt(Credential.objects.get().ciphertext) == {"token": SECRET_VALUE}


# --- delete -------------------------------------------------------------------------------


def test_delete_is_audited_and_admin_only(keys: Any, admin_actor: Actor, owner: Any) -> None:
    credential = save(admin_actor)

    with pytest.raises(Forbidden):
        credential_delete(actor=Actor(user=owner), credential=credential)
    credential_delete(actor=admin_actor, credential=credential)

    assert not Credential.objects.exists()
    event = AuditEvent.objects.get(action="credential.deleted")
    assert event.before["name"] == "slack"
    assert event.target_id == str(credential.pk)
    assert SECRET_VALUE not in all_audit_text()


# --- admin --------------------------------------------------------------------------------


def admin_client(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def form(**changes: Any) -> dict[str, Any]:
    data = {
        "name": "slack",
        "kind": "slack",
        "description": "Bot",
        "secret": json.dumps({"token": SECRET_VALUE}),
        "config": json.dumps({"base_url": "https://slack.example.com/api"}),
    }
    data.update(changes)
    return data


def test_admin_adds_through_the_vault(keys: Any, client: Client, admin_user: Any) -> None:
    client = admin_client(client, admin_user)

    response = client.post(reverse("admin:integrations_credential_add"), form())

    assert response.status_code == 302, response.content
    stored = Credential.objects.get(name="slack")
    assert decrypt(stored.ciphertext) == {"token": SECRET_VALUE}
    assert stored.created_by == admin_user
    assert SECRET_VALUE not in json.dumps(raw_row("slack"), default=str)
    event = AuditEvent.objects.get(action="credential.saved")
    assert event.actor_label == admin_user.username
    assert SECRET_VALUE not in all_audit_text()


def test_admin_never_renders_the_secret(keys: Any, client: Client, admin_user: Any) -> None:
    credential = save(Actor(user=admin_user))
    client = admin_client(client, admin_user)

    pages = [
        client.get(reverse("admin:integrations_credential_changelist")),
        client.get(reverse("admin:integrations_credential_change", args=[credential.pk])),
        client.get(reverse("admin:integrations_credential_history", args=[credential.pk])),
        client.get(reverse("admin:integrations_credential_delete", args=[credential.pk])),
    ]

    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert SECRET_VALUE not in html
        assert credential.ciphertext not in html
    assert 'name="secret"' in pages[1].content.decode()
    assert "slack.example.com" in pages[1].content.decode()  # the config is shown


def test_admin_form_with_an_error_does_not_echo_a_typed_secret(
    keys: Any, client: Client, admin_user: Any
) -> None:
    client = admin_client(client, admin_user)

    response = client.post(reverse("admin:integrations_credential_add"), form(config="[not json"))

    assert response.status_code == 200
    assert "config" in response.context["adminform"].form.errors
    assert SECRET_VALUE not in response.content.decode()
    assert not Credential.objects.exists()


def test_admin_edit_with_empty_secret_keeps_it(keys: Any, client: Client, admin_user: Any) -> None:
    credential = save(Actor(user=admin_user))
    client = admin_client(client, admin_user)
    url = reverse("admin:integrations_credential_change", args=[credential.pk])

    response = client.post(url, form(secret="", description="Renamed bot"))

    assert response.status_code == 302, response.content
    stored = Credential.objects.get(pk=credential.pk)
    assert stored.description == "Renamed bot"
    assert decrypt(stored.ciphertext) == {"token": SECRET_VALUE}
    kept = AuditEvent.objects.filter(action="credential.saved").latest("id")
    assert kept.after["value_replaced"] is False

    client.post(url, form(secret=json.dumps({"token": "xoxb-new"})))

    assert decrypt(Credential.objects.get(pk=credential.pk).ciphertext) == {"token": "xoxb-new"}
    replaced = AuditEvent.objects.filter(action="credential.saved").latest("id")
    assert replaced.after["value_replaced"] is True
    assert "xoxb-new" not in all_audit_text()
    assert Credential.objects.count() == 1


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"secret": ""}, "A new credential needs its secret."),
        ({"secret": '["a list"]'}, "The secret must be a JSON object."),
        ({"config": "[1]"}, "The config must be a JSON object."),
        ({"kind": "carrier-pigeon"}, "Select a valid choice"),
    ],
)
def test_admin_add_form_errors(
    keys: Any, client: Client, admin_user: Any, changes: dict[str, Any], error: str
) -> None:
    client = admin_client(client, admin_user)

    response = client.post(reverse("admin:integrations_credential_add"), form(**changes))

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Credential.objects.exists()


def test_admin_delete_is_audited(keys: Any, client: Client, admin_user: Any) -> None:
    credential = save(Actor(user=admin_user))
    client = admin_client(client, admin_user)

    response = client.post(
        reverse("admin:integrations_credential_delete", args=[credential.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Credential.objects.exists()
    assert AuditEvent.objects.filter(action="credential.deleted").count() == 1


def test_operators_cannot_open_the_credential_admin(
    keys: Any, client: Client, admin_user: Any, owner: Any
) -> None:
    credential = save(Actor(user=admin_user))
    client = admin_client(client, owner)

    assert client.get(reverse("admin:integrations_credential_changelist")).status_code == 403
    change = reverse("admin:integrations_credential_change", args=[credential.pk])
    assert client.get(change).status_code == 403
    assert client.post(change, form(secret=json.dumps({"token": "hijack"}))).status_code == 403
    assert decrypt(Credential.objects.get().ciphertext) == {"token": SECRET_VALUE}


def test_an_admin_role_user_sees_the_list(keys: Any, client: Client) -> None:
    root = factories.user("rooty", role="admin")
    save(Actor(user=root))
    client = admin_client(client, root)

    response = client.get(reverse("admin:integrations_credential_changelist"))

    assert response.status_code == 200
    assert [str(c) for c in response.context["cl"].result_list] == ["slack (slack)"]
