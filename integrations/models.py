from __future__ import annotations

import uuid

from django.db import models

from controlplane.models import AuditTarget, Authored


class Credential(Authored):
    """A secret for an integration (an API key, a bot token, an SMTP password, a webhook
    signing secret), encrypted at rest with the vault key (``integrations.vault``).

    Never returned by the API, never shown in the admin after saving, never logged: only the
    tool proxy and the LLM providers decrypt it, per use, and every use is audited. Agents
    name a credential in a tool's config; they never hold the secret.
    """

    class Kind(models.TextChoices):
        ANTHROPIC = "anthropic"
        OPENAI = "openai"
        SLACK = "slack"
        EMAIL = "email"
        HTTP = "http"
        WEBHOOK = "webhook"
        N8N = "n8n"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = models.TextField(blank=True)
    # Fernet token of the secret fields as JSON (e.g. {"token": "..."}).
    ciphertext = models.TextField(editable=False)
    # What is not secret: base URLs, SMTP host, sender address...
    config = models.JSONField(default=dict, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def audit_target(self) -> AuditTarget:
        return AuditTarget("credential", self.pk, self.name)
