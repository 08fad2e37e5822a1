"""One SDK client per (vendor, base URL, API key), shared by every run in the process.

An SDK client owns an HTTP connection pool; making one per run would open a new TLS
connection for every execution. The clients are thread-safe, so runs on a threads pool
share them. The per-call timeout is passed on each request rather than fixed on the
client, so that runs with different deadlines still reuse the same connections.

This is a cache of read-mostly objects, not state: losing it costs a reconnect.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar, cast

T = TypeVar("T")

# Enough for every (vendor, base URL, key) a deployment plausibly uses; a rotated key
# pushes the oldest client out instead of keeping its pool forever.
MAX_CLIENTS = 32

_clients: OrderedDict[tuple[str, str, str], object] = OrderedDict()
_lock = threading.Lock()


def _cache_key(vendor: str, base_url: str | None, api_key: str) -> tuple[str, str, str]:
    # The key itself is not kept as a dictionary key: a digest tells clients apart as well.
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    return (vendor, base_url or "", digest)


def sdk_client(*, vendor: str, base_url: str | None, api_key: str, make: Callable[[], T]) -> T:
    """The cached client for these settings, made by ``make()`` the first time."""
    key = _cache_key(vendor, base_url, api_key)
    with _lock:
        cached = _clients.get(key)
        if cached is not None:
            _clients.move_to_end(key)
            # The key names the vendor: what is cached under it is what ``make`` makes.
            return cast(T, cached)
        client = make()
        _clients[key] = client
        while len(_clients) > MAX_CLIENTS:
            # Not closed: a run on another thread may still be using it; its pool is
            # released when the last reference goes.
            _clients.popitem(last=False)
        return client
