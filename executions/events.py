"""The one publish path for execution changes.

``execution_transition`` calls ``publish_after_commit`` for every status change; after the
transaction commits, ``execution_changed`` is sent. The live pages (Channels) connect a
receiver to it; nothing is published for a change that was rolled back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from django.db import transaction
from django.dispatch import Signal

# Sent with ``change=ExecutionChange(...)``, after commit.
execution_changed = Signal()


@dataclass(frozen=True)
class ExecutionChange:
    execution_id: str
    agent_id: str
    status: str
    previous_status: str | None
    attempt: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def publish_after_commit(change: ExecutionChange) -> None:
    transaction.on_commit(lambda: execution_changed.send(sender=ExecutionChange, change=change))
