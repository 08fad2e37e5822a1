"""Cards of the agent pages that other apps contribute.

The agent page shows what the registry knows — the agent's panel with its versions, its
webhook, the diff, the production config — and, between the panel and the webhook, the cards
of the apps that know more about the agent: its Run form and its recent runs
(``executions``), its cron schedule (``schedules``). The agents list likewise shows the
callouts of other apps above the table (the schedules that need someone). An app registers
its cards in its ``AppConfig.ready()``::

    agent_page_sections.register(
        Section("run", "executions/_agent_run.html", order=10, context=run_section,
                after_action=True)
    )

A card's ``context`` gets the request, the actor and the agent (for the list: the agents the
actor may see) and returns the template's context, or None when the card is not shown to
this user. Cards are rendered in ``order``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from agents.models import Agent
from controlplane.access import Actor
from controlplane.hooks import Registry

T = TypeVar("T")


@dataclass(frozen=True)
class Section(Generic[T]):
    name: str
    template: str
    order: int
    context: Callable[[HttpRequest, Actor, T], dict[str, Any] | None]
    # Rendered again, out of band, when a lifecycle action or a promotion on the agent page
    # changed the agent (the Run form offers other versions then).
    after_action: bool = False


agent_page_sections: Registry[Section[Agent]] = Registry("agents.agent_page_sections")
agent_list_sections: Registry[Section[QuerySet[Agent]]] = Registry("agents.agent_list_sections")


def render_sections(
    sections: Registry[Section[T]],
    request: HttpRequest,
    actor: Actor,
    subject: T,
    *,
    given: Mapping[str, dict[str, Any]] | None = None,
    after_action: bool = False,
) -> list[SafeString]:
    """The cards as HTML, in order. ``given``: a card's context as its own view already
    made it (a form with its errors) instead of a fresh one. ``after_action``: only the cards
    swapped in after an action, marked out of band."""
    html = []
    for section in sorted(sections, key=lambda section: section.order):
        if after_action and not section.after_action:
            continue
        context = (given or {}).get(section.name) or section.context(request, actor, subject)
        if context is None:
            continue
        if after_action:
            context = {**context, "oob": True}
        html.append(render_to_string(section.template, context, request))
    return html
