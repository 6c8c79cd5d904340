"""Token counters and usage buckets of the shared state (tenants, :mod:`gateway.tenants`): the
in-process implementation (:class:`LocalQuota`) and the Redis one (:class:`RedisQuota`: Lua, so a
reservation checks and charges every counter atomically across replicas).

A counter is ``(key, limit, ttl_s)``; a usage bucket is one minute (``int(time // 60)``) of
``field → tokens``. Keys hold no secret (the tenant layer names them by a hash)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

CounterSpec = tuple[str, int, float]
"""(key, limit, ttl seconds)."""

USAGE_TTL_S = 8 * 86400.0  # per-minute usage buckets are kept 8 days (GET /admin/usage reads up to 7)

# KEYS: counters; ARGV[1] amount, then per key: limit, ttl ms. Returns -1 (charged) or the
# 0-based index of the first counter the amount would take past its limit (nothing charged).
RESERVE_LUA = """
local amount = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local used = tonumber(redis.call('GET', key) or '0')
  if used + amount > tonumber(ARGV[2 * i]) then
    return i - 1
  end
end
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, amount)
  if redis.call('PTTL', key) < 0 then
    redis.call('PEXPIRE', key, ARGV[2 * i + 1])
  end
end
return -1
"""

# KEYS: counters; ARGV[1] delta (may be negative), then per key its ttl ms.
SETTLE_LUA = """
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, ARGV[1])
  if redis.call('PTTL', key) < 0 then
    redis.call('PEXPIRE', key, ARGV[i + 1])
  end
end
return 0
"""


class LocalQuota:
    """Counters and usage buckets in this process (``clock``: monotonic, for expiry)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_counters: int = 100_000) -> None:
        self.clock = clock
        self.max_counters = max_counters
        self._counters: dict[str, tuple[int, float]] = {}  # key → (used, expires)
        self._usage: dict[int, dict[str, int]] = {}  # minute → field → tokens

    def _used(self, key: str, now: float) -> int:
        found = self._counters.get(key)
        if found is None or found[1] <= now:
            return 0
        return found[0]

    def _add(self, key: str, amount: int, ttl_s: float, now: float) -> None:
        found = self._counters.get(key)
        if found is None or found[1] <= now:
            if len(self._counters) >= self.max_counters:
                self._counters = {k: v for k, v in self._counters.items() if v[1] > now}
            self._counters[key] = (amount, now + ttl_s)
        else:
            self._counters[key] = (found[0] + amount, found[1])

    def reserve(self, counters: Sequence[CounterSpec], amount: int) -> int:
        now = self.clock()
        for index, (key, limit, _) in enumerate(counters):
            if self._used(key, now) + amount > limit:
                return index
        for key, _, ttl_s in counters:
            self._add(key, amount, ttl_s, now)
        return -1

    def settle(self, counters: Sequence[CounterSpec], delta: int) -> None:
        now = self.clock()
        for key, _, ttl_s in counters:
            self._add(key, delta, ttl_s, now)

    def usage_add(self, minute: int, fields: Mapping[str, int]) -> None:
        bucket = self._usage.setdefault(minute, {})
        for name, value in fields.items():
            bucket[name] = bucket.get(name, 0) + value
        oldest = minute - int(USAGE_TTL_S // 60)
        for old in [m for m in self._usage if m < oldest]:
            del self._usage[old]

    def usage_since(self, first: int, last: int) -> dict[str, int]:
        total: dict[str, int] = {}
        for minute, bucket in self._usage.items():
            if first <= minute <= last:
                for name, value in bucket.items():
                    total[name] = total.get(name, 0) + value
        return total


class RedisQuota:
    """The same on Redis (``client``: a ``redis.asyncio.Redis``); every call raises on failure."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._reserve = client.register_script(RESERVE_LUA)
        self._settle = client.register_script(SETTLE_LUA)

    async def reserve(self, counters: Sequence[CounterSpec], amount: int) -> int:
        keys = [self.prefix + "q:" + key for key, _, _ in counters]
        args: list[Any] = [amount]
        for _, limit, ttl_s in counters:
            args += [limit, max(1, int(ttl_s * 1000))]
        return int(await self._reserve(keys=keys, args=args))

    async def settle(self, counters: Sequence[CounterSpec], delta: int) -> None:
        keys = [self.prefix + "q:" + key for key, _, _ in counters]
        await self._settle(keys=keys, args=[delta, *(max(1, int(ttl * 1000)) for _, _, ttl in counters)])

    async def usage_add(self, minute: int, fields: Mapping[str, int]) -> None:
        key = f"{self.prefix}usage:{minute}"
        pipe = self.client.pipeline(transaction=False)
        for name, value in fields.items():
            pipe.hincrby(key, name, value)
        pipe.pexpire(key, int(USAGE_TTL_S * 1000))
        await pipe.execute()

    async def usage_since(self, first: int, last: int) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for minute in range(first, last + 1):
            pipe.hgetall(f"{self.prefix}usage:{minute}")
        total: dict[str, int] = {}
        for bucket in await pipe.execute():
            for name, value in bucket.items():
                field = name.decode() if isinstance(name, bytes) else str(name)
                total[field] = total.get(field, 0) + int(value)
        return total


PROCESS_QUOTA = LocalQuota()
"""This process's counters and buckets: every :class:`~gateway.state.local.LocalState` of the
process shares them, so a reload (a new runtime, a new local state) keeps the token counters and
the usage of the last days, as Redis keeps them for the Redis state."""
