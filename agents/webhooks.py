"""An agent's webhook: its secret (rotated, shown once, kept encrypted), and how a trigger of
``POST /api/v1/hooks/agents/{id or name}`` is signed with it and checked (the endpoint itself
is ``executions.api.webhooks``).

Headers (the same scheme the ``webhook_post`` tool signs with, so one control plane's agent
can trigger another's):

    X-ControlPlane-Timestamp: <unix seconds>
    X-ControlPlane-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

A timestamp more than five minutes away from now, or a signature already seen, is refused
with 401; a replay is detected with one atomic Redis step (SET NX with an expiry).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import TypedDict

from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse

from agents.access import require
from agents.models import Agent
from agents.services import agent_locked, refuse_archived
from controlplane.access import Actor
from controlplane.audit import audit_record
from controlplane.errors import Unauthenticated
from integrations.vault import decrypt, encrypt

TIMESTAMP_HEADER = "X-ControlPlane-Timestamp"
SIGNATURE_HEADER = "X-ControlPlane-Signature"
MAX_AGE_SECONDS = 300


class WebhookInstructions(TypedDict):
    secret: str
    url: str
    headers: dict[str, str]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_webhook(agent: Agent, *, timestamp: str, signature: str, body: bytes) -> None:
    secret = agent_webhook_secret(agent)
    if secret is None:
        raise Unauthenticated("This agent has no webhook secret yet: rotate one on its page.")
    if not timestamp or not signature:
        raise Unauthenticated(f"Send {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}.")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise Unauthenticated(f"{TIMESTAMP_HEADER} is not a unix time in seconds.") from None
    if abs(time.time() - sent_at) > MAX_AGE_SECONDS:
        raise Unauthenticated("The signature is older than 5 minutes (or from the future).")
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise Unauthenticated("The signature does not match.")
    # Only a valid signature is remembered: garbage cannot fill the replay store.
    if not cache.add(f"webhook-signature:{agent.pk}:{signature}", 1, timeout=2 * MAX_AGE_SECONDS):
        raise Unauthenticated("This signature was already used (a replay).")


def webhook_instructions(request: HttpRequest, agent: Agent, secret: str) -> WebhookInstructions:
    """What a sender needs, shown once after a rotation."""
    return {
        "secret": secret,
        "url": request.build_absolute_uri(reverse("api:agent-webhook", args=[agent.pk])),
        "headers": {
            TIMESTAMP_HEADER: "<unix time in seconds>",
            SIGNATURE_HEADER: "sha256=<hex HMAC-SHA256(secret, timestamp + '.' + raw body)>",
        },
    }


@transaction.atomic
def agent_webhook_secret_rotate(*, actor: Actor, agent: Agent) -> str:
    """A new secret for the agent's webhook trigger; the old one stops working at once.
    Returns the secret, which is shown once: only its encrypted form is kept."""
    require(actor, "agents.change_agent", agent)
    agent = agent_locked(agent)
    refuse_archived(agent)
    secret = secrets.token_urlsafe(32)
    had_one = bool(agent.webhook_secret_ciphertext)
    agent.webhook_secret_ciphertext = encrypt({"secret": secret})
    agent.save(update_fields=["webhook_secret_ciphertext", "updated_at"])
    audit_record(
        actor=actor,
        action="agent.webhook_secret_rotated",
        target=agent,
        before={"had_secret": had_one},
        after={"had_secret": True},
    )
    return secret


def agent_webhook_secret(agent: Agent) -> str | None:
    if not agent.webhook_secret_ciphertext:
        return None
    secret: str = decrypt(agent.webhook_secret_ciphertext)["secret"]
    return secret
