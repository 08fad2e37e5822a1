"""A run's lifecycle, as a hook: what else happens when a run moves.

``execution_transition`` — the only writer of a run's status — saves the row, writes the audit
event, publishes the change after commit and then calls ``run_moved`` with the ``Transition``,
in its transaction, the row locked. It names no other app: whatever must follow a move
subscribes here in its ``AppConfig.ready()``:

- ``executions`` — a run created on a closed day makes the dashboard forget that day's sums
  (``executions.rollups``); a run that ended gives back what the policy engine reserved for it
  (after commit); a run that succeeded or failed is an event for the agents that follow it
  (``executions.event_triggers``, after commit);
- ``schedules`` — a cron run's end counts towards pausing its schedule and starts a fire that
  was queued behind it.

A subscriber that raises rolls the transition back: subscribe only what belongs to the move
itself, and hand slow or fallible work to ``transaction.on_commit``.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.access import Actor
from controlplane.hooks import Hook
from executions.models import Execution


@dataclass(frozen=True)
class Transition:
    execution: Execution  # the locked row, saved with its new status and fields
    previous: str
    actor: Actor

    @property
    def to(self) -> str:
        return self.execution.status

    @property
    def ended(self) -> bool:
        return self.execution.status in Execution.TERMINAL


run_moved: Hook[[Transition]] = Hook("executions.run_moved")
