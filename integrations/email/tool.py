"""send_email: one plain-text message through Django's e-mail backend.

The connection comes from the EMAIL_* settings, or from an "email" credential when the
proxy passes one (``values``: username, password; ``config``: host, port, use_tls, use_ssl,
from_email). SMTP host and port are the operator's, never the model's, so the network guard
does not apply here.

Not ``idempotent_retry``: SMTP has no idempotency key. The Message-ID is derived from the
action's key, so a retried send at least carries the same id and mail systems that
deduplicate on it will.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.utils import DNS_NAME
from django.core.validators import validate_email
from rest_framework import serializers

from controlplane.serializers import StrictCharField, StrictEmailField
from integrations.addresses import host_matches
from integrations.tools.base import (
    Tool,
    ToolConfig,
    ToolContext,
    ToolError,
    ToolRefused,
    ToolResult,
)
from integrations.tools.common import call_limits, check_arguments
from integrations.vault import Secret

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def _normalized(arguments: dict[str, Any]) -> dict[str, Any]:
    # Models often give one address as a string; that is not worth a refusal.
    if isinstance(arguments, dict) and isinstance(arguments.get("to"), str):
        return {**arguments, "to": [arguments["to"]]}
    return arguments


def _retryable(exc: Exception) -> tuple[bool, int | None]:
    """Whether trying again can help, and the SMTP code if there is one: 4xx codes are
    transient by definition (RFC 5321), 5xx permanent, and a dropped or timed-out
    connection may work next time."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return all(400 <= code < 500 for code in codes), (codes[0] if codes else None)
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500 or exc.smtp_code < 0, exc.smtp_code
    if isinstance(exc, smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError):
        return False, None
    return True, None  # disconnects, timeouts, refused connections


class EmailToolConfig(ToolConfig):
    allowed_recipients = serializers.ListField(child=StrictEmailField(), default=list)
    allowed_domains = serializers.ListField(child=StrictCharField(max_length=253), default=list)


class SendEmailTool(Tool):
    name = "send_email"
    kind = "email"
    capability = "notify"
    destination = "email"
    config_serializer = EmailToolConfig
    description = "Send a plain-text e-mail to one or more recipients."
    input_schema = {
        "type": "object",
        "properties": {
            "to": {
                "type": "array",
                "items": {"type": "string", "format": "email", "maxLength": 254},
                "minItems": 1,
                "maxItems": 50,
                "description": "Recipient addresses.",
            },
            "subject": {"type": "string", "minLength": 1, "maxLength": 500},
            "body": {"type": "string", "maxLength": 100000},
        },
        "required": ["to", "subject", "body"],
        "additionalProperties": False,
    }
    idempotent_retry = False

    def recipients(self, arguments: dict[str, Any], config: dict[str, Any]) -> list[str]:
        """The checked recipients; ``ToolRefused`` for a bad argument or a recipient the
        tool's ``allowed_recipients`` / ``allowed_domains`` do not cover."""
        arguments = check_arguments(self.input_schema, _normalized(arguments))
        if any(char in arguments["subject"] for char in "\r\n"):
            raise ToolRefused("The subject must be one line.")
        allowed = {address.lower() for address in config.get("allowed_recipients") or []}
        domains = config.get("allowed_domains") or []
        recipients: list[str] = []
        for address in arguments["to"]:
            address = address.strip()
            try:
                validate_email(address)
            except ValidationError:
                raise ToolRefused(f"{address!r} is not an e-mail address.") from None
            if (allowed or domains) and not (
                address.lower() in allowed or host_matches(address.rpartition("@")[2], domains)
            ):
                raise ToolRefused(f"{address} is not an allowed recipient of this tool.")
            if address.lower() not in {known.lower() for known in recipients}:
                recipients.append(address)
        return recipients

    def target(self, arguments: dict[str, Any], config: dict[str, Any]) -> list[str]:
        to = arguments.get("to") or []
        return [str(item) for item in (to if isinstance(to, list) else [to])]

    def authorize(self, arguments: dict[str, Any], config: dict[str, Any]) -> None:
        self.recipients(arguments, config)

    def run(self, context: ToolContext, arguments: dict[str, Any]) -> ToolResult:
        recipients = self.recipients(arguments, context.config)
        arguments = _normalized(arguments)
        timeout, _ = call_limits(context)
        secret = context.credential
        sender: str = (secret.config.get("from_email") if secret else None) or (
            settings.DEFAULT_FROM_EMAIL
        )
        domain = sender.rpartition("@")[2].strip("> ") or str(DNS_NAME)
        digest = hashlib.sha256(context.idempotency_key.encode()).hexdigest()[:32]
        message_id = f"<{digest}.controlplane@{domain}>"
        try:
            connection = _connection(secret, timeout)
        except ValueError as exc:  # e.g. both use_tls and use_ssl: a config mistake
            raise ToolError(f"The e-mail settings are invalid: {exc}", retryable=False) from None
        message = EmailMessage(
            subject=arguments["subject"],
            body=arguments["body"],
            from_email=sender,
            to=recipients,
            headers={
                "Message-ID": message_id,
                # RFC 3834: no auto-replies to an agent's mail (and no reply loops).
                "Auto-Submitted": "auto-generated",
                "X-ControlPlane-Execution": context.execution_id,
            },
            connection=connection,
        )
        try:
            message.send(fail_silently=False)
        except (smtplib.SMTPException, OSError) as exc:
            retryable, code = _retryable(exc)
            raise ToolError(
                f"The mail server did not take the message: {exc}", retryable=retryable, status=code
            ) from None
        return ToolResult(
            content={
                "sent": True,
                "to": recipients,
                "subject": arguments["subject"],
                "message_id": message_id,
            },
            target=", ".join(recipients),
            method="smtp",
            detail={"message_id": message_id, "recipients": len(recipients)},
        )


def _connection(secret: Secret | None, timeout: float) -> BaseEmailBackend:
    if secret is None:
        return get_connection(fail_silently=False, timeout=timeout)
    config = secret.config
    return get_connection(
        SMTP_BACKEND,
        fail_silently=False,
        host=config.get("host") or None,
        port=config.get("port") or None,
        username=secret.values.get("username"),
        password=secret.values.get("password"),
        use_tls=config.get("use_tls"),
        use_ssl=config.get("use_ssl"),
        timeout=timeout,
    )
