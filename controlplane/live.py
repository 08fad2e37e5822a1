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

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

FEEDS = ("executions", "approvals")
MESSAGE_TYPE = "live.changed"


def group(topic: str) -> str:
    """Channel-layer group of a topic (``execution:<id>`` → ``execution.<id>``)."""
    return topic.replace(":", ".")


def publish(topics: list[str], **what: Any) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {
        "type": MESSAGE_TYPE,
        **{k: str(v) if v is not None else None for k, v in what.items()},
    }
    groups = [group(topic) for topic in topics]
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: a worker, a request's thread
        _send(layer, groups, message, what)
        return
    # Called from a thread that runs an event loop (async_to_sync cannot run there).
    sender = threading.Thread(target=_send, args=(layer, groups, message, what))
    sender.start()
    sender.join()


def _send(layer: Any, groups: list[str], message: dict[str, Any], what: Any) -> None:
    try:
        async_to_sync(_send_all)(layer, groups, message)
    except Exception:
        logger.exception("live: could not publish %s to %s", what, groups)


async def _send_all(layer: Any, groups: list[str], message: dict[str, Any]) -> None:
    for name in groups:
        await layer.group_send(name, message)


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
