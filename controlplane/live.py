"""Live pages: the one publish path from the services to the browsers.

Every change a page shows is one of two typed payloads, published with
``publish_after_commit`` once the change's transaction commits (at once outside one), so
that nothing rolled back is ever shown:

- ``RunChanged`` — a run was created or moved to another status (``execution_transition``),
  or a step was added to its timeline (``RunRecorder``): to ``execution.<id>``,
  ``agent.<agent id>`` and the ``executions`` feed;
- ``ApprovalChanged`` — an approval request was opened, decided, expired or cancelled: to the
  ``approvals`` feed and its run's group.

A message names what changed — never its content; the consumer (``console.consumers``)
checks what the user may see and renders the partial for them. A publish that fails is
logged: the change itself is committed and the page shows it on its next render.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from channels.layers import BaseChannelLayer, get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

FEEDS = ("executions", "approvals")
MESSAGE_TYPE = "live.changed"


def group(topic: str) -> str:
    """Channel-layer group of a topic (``execution:<id>`` → ``execution.<id>``)."""
    return topic.replace(":", ".")


class _Publisher:
    """One event loop thread per process that sends the live messages, in order, over the
    channel layer's connections for that loop (kept open: no connection per message). Started
    on first use. Best effort: a message still queued when the process exits is lost, and the
    page's next change or reconnect brings it up to date."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[list[str], dict[str, Any]]] | None = None

    def send(self, groups: list[str], message: dict[str, Any]) -> None:
        loop, queue = self._started()
        loop.call_soon_threadsafe(queue.put_nowait, (groups, message))

    def _started(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue[Any]]:
        with self._lock:
            if self._loop is None or not self._loop.is_running():
                ready = threading.Event()
                threading.Thread(
                    target=self._run, args=(ready,), name="live-publisher", daemon=True
                ).start()
                ready.wait(timeout=5)
            assert self._loop is not None and self._queue is not None
            return self._loop, self._queue

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop, self._queue = loop, asyncio.Queue()
        loop.call_soon(ready.set)
        loop.run_until_complete(self._drain(self._queue))

    async def _drain(self, queue: asyncio.Queue[tuple[list[str], dict[str, Any]]]) -> None:
        while True:
            groups, message = await queue.get()
            try:
                # publish() hands nothing over without a channel layer.
                layer = cast(BaseChannelLayer, get_channel_layer())
                for name in groups:
                    await layer.group_send(name, message)
            except Exception:
                logger.exception("live: could not publish %s to %s", message, groups)


_PUBLISHER = _Publisher()


Id = UUID | str


@dataclass(frozen=True)
class RunChanged:
    """A run was created, moved (``status`` is its new status) or got a step (``status`` "")."""

    execution_id: Id
    agent_id: Id
    status: str = ""

    def topics(self) -> list[str]:
        return [f"execution:{self.execution_id}", f"agent:{self.agent_id}", "executions"]

    def message(self) -> dict[str, str | None]:
        return _message(
            kind="execution", id=self.execution_id, agent_id=self.agent_id, status=self.status
        )


@dataclass(frozen=True)
class ApprovalChanged:
    """An approval request was opened, decided, expired or cancelled."""

    approval_id: Id
    execution_id: Id
    agent_id: Id

    def topics(self) -> list[str]:
        return ["approvals", f"execution:{self.execution_id}"]

    def message(self) -> dict[str, str | None]:
        return _message(
            kind="approval",
            id=self.approval_id,
            execution_id=self.execution_id,
            agent_id=self.agent_id,
        )


Change = RunChanged | ApprovalChanged


def _message(**what: Any) -> dict[str, str | None]:
    return {
        "type": MESSAGE_TYPE,
        **{key: str(value) if value is not None else None for key, value in what.items()},
    }


def publish_after_commit(change: Change) -> None:
    """Publish ``change`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: publish(change))


def publish(change: Change) -> None:
    """Hand the message to this process's publisher thread and return at once: the caller
    (a worker finishing a run, a request) never waits on Redis."""
    if get_channel_layer() is None:
        return
    _PUBLISHER.send([group(topic) for topic in change.topics()], change.message())
