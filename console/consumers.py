"""The live pages' websocket: ``/ws/live/?topics=execution:<id>,agent:<id>,executions,approvals``.

On connect the user must be signed in (else closed with 4401) and may see every topic asked
for (else closed with 4403, joining nothing): an execution or an agent they may view, the
executions feed with the right to read runs, the approvals feed with the right to read
approvals. Then, and after each reconnect, the current state is sent at once (a page that
lost its socket resyncs), and each change published by ``controlplane.live`` is relayed:

- ``{"target": "<element id>", "html": "..."}`` — the partial rendered for this user, which the
  page swaps in (the execution page's section, the agent page's recent runs);
- ``{"refresh": "executions" | "approvals"}`` — a list changed where this user may see it: the
  page fetches its own partial again (with its filters and page).

``static/js/live.js`` is the page side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string

from agents.selectors import agent_get, agent_visible_qs
from approvals.selectors import approval_visible_qs
from controlplane.access import Actor, can, is_admin
from controlplane.errors import NotFound, ServiceError
from controlplane.live import FEEDS, group
from executions.selectors import execution_get
from executions.views import detail_context, recent_runs_context

if TYPE_CHECKING:
    from django.contrib.auth.models import User

MAX_TOPICS = 10
FEED_PERMS = {
    "executions": "executions.view_execution",
    "approvals": "approvals.view_approvalrequest",
}


def _object_topics(event: dict[str, Any]) -> set[str]:
    """The object topics a change concerns: its run's page, and its agent's page for a run."""
    topics = {f"execution:{event.get('execution_id') or event.get('id')}"}
    if event.get("kind") == "execution":
        topics.add(f"agent:{event.get('agent_id')}")
    return topics


class LiveConsumer(AsyncJsonWebsocketConsumer):
    actor: Actor
    topics: list[str]
    visible_agents: set[str] | None  # None: every agent (admins)

    async def connect(self) -> None:
        self.topics = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        asked = [t for t in ",".join(query.get("topics", [])).split(",") if t][:MAX_TOPICS]
        self.actor = Actor(user=cast("User", user))  # signed in: the lazy object is a User
        if not asked or not await database_sync_to_async(self._authorize)(asked):
            await self.close(code=4403)
            return
        self.topics = asked
        for topic in self.topics:
            await self.channel_layer.group_add(group(topic), self.channel_name)
        await self.accept()
        for topic in self.topics:  # resync: the state now
            await self._relay(topic)

    async def disconnect(self, code: int) -> None:
        for topic in self.topics:
            await self.channel_layer.group_discard(group(topic), self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if content == {"resync": True}:
            for topic in self.topics:
                await self._relay(topic)

    async def live_changed(self, event: dict[str, Any]) -> None:
        """A change published by ``controlplane.live``: relay what it means for each topic
        this socket follows."""
        for topic in self.topics:
            if topic in FEEDS:
                if event.get("kind") == topic[:-1] and await self._sees(event):
                    await self.send_json({"refresh": topic})
            elif topic in _object_topics(event):
                await self._relay(topic)

    async def _sees(self, event: dict[str, Any]) -> bool:
        """A run: of an agent this user may see (the set taken on connect). An approval:
        one this user may see — its approvers may not see the agent itself."""
        if event.get("kind") == "approval":
            return await database_sync_to_async(self._sees_approval)(event.get("id"))
        return self.visible_agents is None or (event.get("agent_id") or "") in self.visible_agents

    def _sees_approval(self, approval_id: Any) -> bool:
        return approval_visible_qs(actor=self.actor).filter(pk=approval_id).exists()

    async def _relay(self, topic: str) -> None:
        if topic in FEEDS:
            await self.send_json({"refresh": topic})
            return
        rendered = await database_sync_to_async(self._render)(topic)
        if rendered is not None:
            await self.send_json({"target": rendered[0], "html": rendered[1]})

    # -- in a thread, with the database ---------------------------------------------------

    def _authorize(self, topics: list[str]) -> bool:
        for topic in topics:
            kind, _, ref = topic.partition(":")
            try:
                if kind == "execution" and ref:
                    execution_get(actor=self.actor, pk=ref)
                elif kind == "agent" and ref:
                    agent_get(actor=self.actor, ref=ref)
                elif topic in FEED_PERMS:
                    if not can(self.actor, FEED_PERMS[topic]):
                        return False
                else:
                    return False
            except (ServiceError, ValueError, ValidationError):  # not visible, malformed id
                return False
        self.visible_agents = (
            None
            if is_admin(self.actor.user)
            else {str(pk) for pk in agent_visible_qs(actor=self.actor).values_list("pk", flat=True)}
        )
        return True

    def _render(self, topic: str) -> tuple[str, str] | None:
        kind, _, ref = topic.partition(":")
        try:
            if kind == "execution":
                execution = execution_get(actor=self.actor, pk=ref)
                context: dict[str, Any] | None = detail_context(self.actor, execution)
                return "execution", render_to_string("executions/_detail.html", context)
            agent = agent_get(actor=self.actor, ref=ref)
        except NotFound:
            return None  # no longer visible to this user: nothing is sent
        context = recent_runs_context(self.actor, agent)
        if context is None:  # may not read runs: the card is empty
            return "recent-runs", ""
        return "recent-runs", render_to_string("executions/_agent_recent_runs.html", context)
