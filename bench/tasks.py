"""The floor task of ``bench executions``."""

from __future__ import annotations

import time
from functools import cache

import redis
from celery import shared_task
from django.conf import settings


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


@shared_task(name="bench.tasks.bench_noop", ignore_result=True)
def bench_noop(sent_at: float | None = None) -> None:
    """The floor of ``manage.py bench executions``: a task that only says it ran (one Redis
    round trip), so that Celery's own cost can be measured next to a real run's."""
    now = time.time()
    pipe = _redis().pipeline(transaction=False)
    pipe.incr("bench:noop:count")
    pipe.setnx("bench:noop:first", now)
    pipe.set("bench:noop:last", now)
    if sent_at is not None:
        pipe.rpush("bench:noop:latency", now - sent_at)
    pipe.execute()
