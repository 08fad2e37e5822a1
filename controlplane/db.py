"""Database connection hygiene for long waits in worker threads."""

from __future__ import annotations

from django.db import connection


def release_connection() -> None:
    """Give the connection back (to the pool, on PostgreSQL) before waiting on the network,
    so that hundreds of runs waiting on models hold no database connections. Django opens
    a new one on the next query. Inside a transaction it must stay: nothing is done."""
    # SQLite has no server to run out of connections, and closing one is not free (a WAL
    # checkpoint): keep it.
    if connection.vendor != "sqlite" and not connection.in_atomic_block:
        connection.close()
