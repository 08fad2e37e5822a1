"""Live pages: one publish path from the services to the browsers.

The services publish after their transaction commits (``publish_after_commit``): an
execution's transitions and new steps to ``execution.<id>``, ``agent.<agent id>`` and the
``executions`` feed; an approval opened, decided, expired or cancelled to the ``approvals``
feed and its run's group. A message names what changed — never its content; the consumer
(``controlplane.consumers.LiveConsumer``) checks what the user may see and renders the partial
for them. A publish that fails is logged: the change itself is committed and the page shows
it on its next render.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

FEEDS = ("executions", "approvals")
MESSAGE_TYPE = "live.changed"


def group(topic: str) -> str:
    """Channel-layer group of a topic (``execution:<id>`` → ``execution.<id>``)."""
    return topic.replace(":", ".")


def publish(topics: list[str], **what: Any) -> None:
    """Hand the message to this process's publisher thread and return at once: the caller
    (a worker finishing a run, a request) never waits on Redis."""
    if get_channel_layer() is None:
        return
    message = {
        "type": MESSAGE_TYPE,
        **{k: str(v) if v is not None else None for k, v in what.items()},
    }
    _PUBLISHER.send([group(topic) for topic in topics], message)


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
                layer = get_channel_layer()
                for name in groups:
                    await layer.group_send(name, message)
            except Exception:
                logger.exception("live: could not publish %s to %s", message, groups)


_PUBLISHER = _Publisher()


def publish_after_commit(topics: list[str], **what: Any) -> None:
    transaction.on_commit(lambda: publish(topics, **what))


def publish_execution_after_commit(execution_id: Any, agent_id: Any, status: str = "") -> None:
    """A run created, or a step added: after commit (at once outside a transaction)."""
    transaction.on_commit(lambda: publish_execution(execution_id, agent_id, status))


def publish_execution(execution_id: Any, agent_id: Any, status: str = "") -> None:
    publish(
        [f"execution:{execution_id}", f"agent:{agent_id}", "executions"],
        kind="execution",
        id=execution_id,
        agent_id=agent_id,
        status=status,
    )


def on_execution_changed(sender: Any, change: Any, **kwargs: Any) -> None:
    """``executions.events.execution_changed`` (sent after commit) → the live pages."""
    publish_execution(change.execution_id, change.agent_id, change.status)


def publish_approval_after_commit(approval_id: Any, execution_id: Any, agent_id: Any) -> None:
    publish_after_commit(
        ["approvals", f"execution:{execution_id}"],
        kind="approval",
        id=approval_id,
        execution_id=execution_id,
        agent_id=agent_id,
    )
