"""Telling people: a new request to its approvers, a warning before it expires, the decision
to whoever triggered the run. By e-mail (Django's e-mail backend) and, when
``APPROVALS_SLACK_WEBHOOK_URL`` is set, by a Slack incoming webhook.

``approval_notify`` (the Celery task) calls ``send`` once per channel still to do; a channel
that fails raises ``NotifyFailed`` naming what is left, and the task retries those later with
backoff. The request itself never waits on a notification. Every send and every failure is
audited.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.urls import reverse

from approvals.models import ApprovalRequest
from controlplane.access import Actor
from controlplane.audit import audit_record
from controlplane.roles import admin_emails
from integrations.net import safe_request
from integrations.tools.base import ToolError, ToolRefused

NOTIFIER = Actor.for_system("approval-notifier")
EVENTS = ("requested", "warning", "decided")


class NotifyFailed(Exception):
    def __init__(self, channels: list[str], message: str) -> None:
        super().__init__(message)
        self.channels = channels


@dataclass(frozen=True)
class Message:
    subject: str
    body: str
    recipients: list[str]


def page_url(request: ApprovalRequest) -> str:
    base_url = settings.PUBLIC_BASE_URL
    return base_url.rstrip("/") + reverse("approvals:detail", args=[request.pk])


def approver_emails(request: ApprovalRequest) -> list[str]:
    """The listed e-mails, the members of listed groups, or — when nobody is listed — the
    admins."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    emails = [a for a in request.approvers if not a.startswith("group:")]
    groups = [a[6:] for a in request.approvers if a.startswith("group:")]
    if groups:
        emails += users.filter(groups__name__in=groups).values_list("email", flat=True)
    if not request.approvers:
        emails += admin_emails()
    return sorted({email.lower() for email in emails})


def message(request: ApprovalRequest, event: str) -> Message:
    agent = request.agent.name
    payload = json.dumps(request.requested_action, indent=2, ensure_ascii=False, sort_keys=True)
    link = page_url(request)
    if event == "decided":
        recipient = getattr(request.requested_by, "email", "") or ""
        subject = f"{request.action} for {agent}: {request.status}"
        body = (
            f"Your request to run {request.action} for agent {agent} was {request.status}"
            + (f" by {request.decided_by}" if request.decided_by else "")
            + (f": {request.review_notes}" if request.review_notes else ".")
            + f"\n\n{link}\n"
        )
        return Message(subject, body, [recipient] if recipient else [])
    when = request.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    if event == "warning":
        subject = f"Expires soon: approve {request.action} for {agent}?"
        lead = f"This request expires at {when} ({request.on_expire} on expiry)."
    else:
        subject = f"Approval needed ({request.risk_level} risk): {request.action} for {agent}"
        lead = f"{request.reason}. It expires at {when}."
    body = (
        f"Agent {agent} wants to run {request.action} (risk {request.risk_level}), "
        f"triggered by {request.requested_by_label or 'the system'}.\n{lead}\n\n"
        f"Exactly what will run:\n{payload}\n\nApprove or reject: {link}\n"
    )
    return Message(subject, body, approver_emails(request))


def channels() -> list[str]:
    return ["email", *(["slack"] if settings.APPROVALS_SLACK_WEBHOOK_URL else [])]


def send(approval_id: str, event: str, todo: list[str], attempt: int, final: bool) -> None:
    """Send ``event`` on each channel in ``todo``; raise ``NotifyFailed`` with those that
    failed (``final``: no retry follows, say so in the audit)."""
    request = (
        ApprovalRequest.objects.select_related("agent", "requested_by")
        .filter(pk=approval_id)
        .first()
    )
    if request is None:  # deleted with its run since: nobody to tell
        return
    text = message(request, event)
    failed: list[str] = []
    errors: list[str] = []
    for channel in todo:
        try:
            sent_to = SENDERS[channel](text)
        except Exception as exc:
            failed.append(channel)
            errors.append(f"{channel}: {exc}")
            _audit(request, "approval.notify_failed", event, channel, attempt, error=str(exc),
                   will_retry=not final)  # fmt: skip
            continue
        if sent_to:
            _audit(request, "approval.notified", event, channel, attempt, recipients=sent_to)
    if failed:
        raise NotifyFailed(failed, "; ".join(errors))


def _email(text: Message) -> list[str]:
    if not text.recipients:
        return []
    send_mail(
        text.subject,
        text.body,
        settings.DEFAULT_FROM_EMAIL,
        text.recipients,
        fail_silently=False,
    )
    return text.recipients


def _slack(text: Message) -> list[str]:
    url = settings.APPROVALS_SLACK_WEBHOOK_URL
    try:
        safe_request(
            "POST",
            url,
            json={"text": f"*{text.subject}*\n{text.body}"},
            timeout=10,
            max_response_bytes=64 * 1024,
            allow_private=True,  # the operator's own setting, not a model's URL
        )
    except (ToolError, ToolRefused) as exc:
        raise RuntimeError(
            getattr(exc, "message", None) or getattr(exc, "reason", str(exc))
        ) from None
    return ["slack"]


SENDERS = {"email": _email, "slack": _slack}


def _audit(request: ApprovalRequest, action: str, event: str, channel: str, attempt: int,
           **after: Any) -> None:  # fmt: skip
    audit_record(
        actor=NOTIFIER,
        action=action,
        target=request,
        after={"event": event, "channel": channel, "attempt": attempt, **after},
    )
