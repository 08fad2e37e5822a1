"""Proof of life for running executions.

Each worker process beats for the runs it is executing: one thread, one UPDATE per interval
for all of them. The maintenance sweep treats a running execution whose heartbeat is older
than ``EXECUTION_HEARTBEAT_TIMEOUT_SECONDS`` as lost with its worker. (This set is the
process's own business — which runs *this* process executes — not shared state.)
"""

from __future__ import annotations

import logging
import os
import threading
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.utils import timezone

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_running: set[UUID] = set()
_thread: threading.Thread | None = None
_pid: int | None = None


def track(execution_id: UUID) -> None:
    global _thread, _pid
    with _lock:
        _running.add(execution_id)
        if _thread is None or _pid != os.getpid():  # a forked child starts its own
            _pid = os.getpid()
            _thread = threading.Thread(target=_beat, name="execution-heartbeat", daemon=True)
            _thread.start()


def untrack(execution_id: UUID) -> None:
    with _lock:
        _running.discard(execution_id)


def beat_once() -> int:
    from executions.models import Execution

    with _lock:
        ids = list(_running)
    if not ids:
        return 0
    try:
        return Execution.objects.filter(pk__in=ids, status=Execution.Status.RUNNING).update(
            heartbeat_at=timezone.now()
        )
    finally:
        connection.close()


def _beat() -> None:
    interval = settings.EXECUTION_HEARTBEAT_SECONDS
    stop = threading.Event()
    while not stop.wait(interval):
        try:
            beat_once()
        except Exception:  # the database may be briefly away; the next beat tries again
            logger.exception("heartbeat failed")
