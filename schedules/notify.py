"""Telling people that a schedule needs them: it missed fires, or it paused itself after
failed runs. By e-mail to the agent's owner and the admins; every send and failure audited."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from agents.models import Agent
from controlplane.access import Actor
from controlplane.audit import audit_record
from controlplane.models import AuditTarget
from controlplane.roles import admin_emails

NOTIFIER = Actor.for_system("schedule-notifier")
SUBJECTS = {
    "missed": "Schedule of {agent} missed its time",
    "paused": "Schedule of {agent} paused after failed runs",
}


class NotifyFailed(Exception):
    pass


def recipients(agent: Agent) -> list[str]:
    emails = [agent.owner_email, *admin_emails()]
    return sorted({email.lower() for email in emails if email})


def send(agent_id: str, event: str, detail: str) -> None:
    agent = Agent.objects.filter(pk=agent_id).first()
    if agent is None:
        return
    to = recipients(agent)
    base_url = settings.PUBLIC_BASE_URL
    link = base_url.rstrip("/") + reverse("agents:detail", args=[agent.name])
    subject = SUBJECTS[event].format(agent=agent.name)
    what = {"event": event, "detail": detail}
    try:
        send_mail(subject, f"{detail}\n\n{link}\n", settings.DEFAULT_FROM_EMAIL, to)
    except Exception as exc:
        _audit(agent, "schedule.notify_failed", **what, error=str(exc))
        raise NotifyFailed(str(exc)) from None
    _audit(agent, "schedule.notified", **what, recipients=to)


def _audit(agent: Agent, action: str, **after: object) -> None:
    audit_record(
        actor=NOTIFIER,
        action=action,
        target=AuditTarget("schedule", agent.pk, agent.name, agent.pk),
        after=dict(after),
    )
