"""Counters that hold across processes and machines: one Lua script per check, so a
check-and-increment is one atomic Redis step, and Redis's own clock is the clock.

- rate windows: a sorted set of admissions scored by time (a sliding window);
- running counts: a sorted set of the admitted runs; a run leaves it when it ends;
- spend: a hash of micro-dollars reserved and spent per budget period; a run reserves its
  estimate when admitted and settles its actual cost when it ends (the reservation is
  released, whatever happened), exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
from django.conf import settings

PREFIX = "cp:policy"
CONCURRENCY_KEYS = f"{PREFIX}:concurrency-keys"

# KEYS[1] window zset; ARGV: window ms, limit, member, dry ("1"/"0")
RATE_LIMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < tonumber(ARGV[2]) then
  if ARGV[4] == '0' then
    redis.call('ZADD', KEYS[1], now, ARGV[3])
    redis.call('PEXPIRE', KEYS[1], window)
  end
  return {1, count + 1, now, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, count, now, tonumber(oldest[2])}
"""

# KEYS[1] running zset, KEYS[2] the set of such keys; ARGV: limit, member, dry
CONCURRENCY = """
local count = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  return {1, count}
end
if count < tonumber(ARGV[1]) then
  if ARGV[3] == '0' then
    local t = redis.call('TIME')
    redis.call('ZADD', KEYS[1], tonumber(t[1]), ARGV[2])
    redis.call('SADD', KEYS[2], KEYS[1])
  end
  return {1, count + 1}
end
return {0, count}
"""

# KEYS[1] budget hash; ARGV: limit (micro-$), estimate (micro-$), member, ttl s, dry
BUDGET_RESERVE = """
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
if redis.call('HEXISTS', KEYS[1], 'r:' .. ARGV[3]) == 1 then
  return {1, reserved, spent}
end
local estimate = tonumber(ARGV[2])
if reserved + spent + estimate > tonumber(ARGV[1]) then
  return {0, reserved, spent}
end
if ARGV[5] == '0' then
  redis.call('HINCRBY', KEYS[1], 'reserved', estimate)
  redis.call('HSET', KEYS[1], 'r:' .. ARGV[3], estimate)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
end
return {1, reserved + estimate, spent}
"""

# KEYS[1] budget hash; ARGV: member, actual (micro-$; -1: unknown, count the reservation), ttl s
BUDGET_SETTLE = """
local r = redis.call('HGET', KEYS[1], 'r:' .. ARGV[1])
if r then
  redis.call('HDEL', KEYS[1], 'r:' .. ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(r))
end
local actual = tonumber(ARGV[2])
if actual < 0 then
  actual = tonumber(r or '0')
end
if redis.call('HSETNX', KEYS[1], 's:' .. ARGV[1], 1) == 1 then
  redis.call('HINCRBY', KEYS[1], 'spent', actual)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
  return 1
end
return 0
"""


@cache
def client() -> redis.Redis:
    """This process's client: a bounded pool that a burst of threads waits on (instead of
    failing when every connection is busy)."""
    pool = redis.BlockingConnectionPool.from_url(
        settings.REDIS_URL,
        max_connections=settings.REDIS_POOL_MAX_SIZE,
        timeout=settings.REDIS_POOL_TIMEOUT,
        socket_timeout=5,
        socket_connect_timeout=5,
    )
    return redis.Redis(connection_pool=pool)


@cache
def _scripts() -> dict[str, Any]:
    connection = client()
    return {
        "rate": connection.register_script(RATE_LIMIT),
        "concurrency": connection.register_script(CONCURRENCY),
        "reserve": connection.register_script(BUDGET_RESERVE),
        "settle": connection.register_script(BUDGET_SETTLE),
    }


@dataclass(frozen=True)
class RateCheck:
    admitted: bool
    count: int
    free_in_ms: int  # when not admitted: until the oldest admission leaves the window


def rate_acquire(
    key: str, *, limit: int, window_ms: int, member: str, dry: bool = False
) -> RateCheck:
    admitted, count, now, oldest = _scripts()["rate"](
        keys=[key], args=[window_ms, limit, member, "1" if dry else "0"]
    )
    free_in = 0 if admitted else max(1, int(oldest) + window_ms - int(now) + 1)
    return RateCheck(bool(admitted), int(count), free_in)


def rate_release(key: str, member: str) -> None:
    client().zrem(key, member)


def concurrency_acquire(
    key: str, *, limit: int, member: str, dry: bool = False
) -> tuple[bool, int]:
    admitted, count = _scripts()["concurrency"](
        keys=[key, CONCURRENCY_KEYS], args=[limit, member, "1" if dry else "0"]
    )
    return bool(admitted), int(count)


def concurrency_release(key: str, member: str) -> None:
    client().zrem(key, member)


def budget_reserve(
    key: str, *, limit_micro: int, estimate_micro: int, member: str, ttl: int, dry: bool = False
) -> tuple[bool, int, int]:
    """(admitted, reserved, spent) in micro-dollars."""
    admitted, reserved, spent = _scripts()["reserve"](
        keys=[key], args=[limit_micro, estimate_micro, member, ttl, "1" if dry else "0"]
    )
    return bool(admitted), int(reserved), int(spent)


def budget_settle(key: str, *, member: str, actual_micro: int, ttl: int) -> bool:
    """Release the member's reservation and add its actual cost, once."""
    return bool(_scripts()["settle"](keys=[key], args=[member, actual_micro, ttl]))


def budget_state(key: str) -> tuple[int, int]:
    reserved, spent = client().hmget(key, "reserved", "spent")
    return int(reserved or 0), int(spent or 0)
