"""The in-process :class:`~gateway.state.SharedState`: a bounded LRU with per-entry expiry, token
buckets per (rate, burst), no one to share cool-down verdicts with, and worker registrations in
memory or, for ``serve --workers N``, in a directory the server's processes share."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gateway.ratelimit import TokenBuckets
from gateway.state import DownWatcher
from gateway.state.quota import PROCESS_QUOTA, CounterSpec
from gateway.state.records import MemoryRecords, RecordStore
from gateway.state.registrations import MemoryRegistrations, RegistrationStore


class LocalState:
    """Everything in this process; ``max_entries`` bounds the cache (least recently used go first)."""

    def __init__(
        self,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        registrations: RegistrationStore | None = None,
        records: RecordStore | None = None,
    ) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self.registrations: RegistrationStore = registrations if registrations is not None else MemoryRegistrations(clock)
        self.records: RecordStore = records if records is not None else MemoryRecords()  # build_state: the process's
        self._cache: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._buckets: dict[tuple[float, int], TokenBuckets] = {}
        self.quota = PROCESS_QUOTA  # tenants' token counters and usage buckets: the process's, kept across reloads

    async def cache_get(self, key: str) -> bytes | None:
        found = self._cache.get(key)
        if found is None:
            return None
        expires, value = found
        if expires <= self.clock():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return value

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None:
        if self.max_entries <= 0 or ttl_s <= 0:
            return
        self._cache[key] = (self.clock() + ttl_s, value)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def record_put(self, key: str, value: bytes, ttl_s: float) -> None:
        if ttl_s > 0:
            self.records.put(key, value, ttl_s)

    async def record_get(self, key: str) -> bytes | None:
        return self.records.get(key)

    async def take(self, key: str, rate: float, burst: int) -> float:
        return self.take_now(key, rate, burst)

    def take_now(self, key: str, rate: float, burst: int) -> float:
        """:meth:`take` without the coroutine (the fail-open wrapper's fallback)."""
        buckets = self._buckets.get((rate, burst))
        if buckets is None:
            buckets = self._buckets[(rate, burst)] = TokenBuckets(rate, burst, self.clock)
        return buckets.take(key)

    async def mark_down(self, pool: str, url: str, seconds: float, error: str) -> None:
        """Nothing to publish: this process's pool already took the endpoint out of rotation."""

    def watch_down(self, watcher: DownWatcher) -> None:
        """No other process publishes here."""

    async def register_put(self, node: str, record: bytes, ttl_s: float) -> None:
        self.registrations.put(node, record, ttl_s)

    async def register_all(self) -> dict[str, bytes]:
        return self.registrations.all()

    async def reserve(self, counters: Sequence[CounterSpec], amount: int) -> int:
        return self.quota.reserve(counters, amount)

    async def settle(self, counters: Sequence[CounterSpec], delta: int) -> None:
        self.quota.settle(counters, delta)

    async def usage_add(self, minute: int, fields: Mapping[str, int]) -> None:
        self.quota.usage_add(minute, fields)

    async def usage_since(self, first: int, last: int) -> dict[str, int]:
        return self.quota.usage_since(first, last)

    def status(self) -> dict[str, Any]:
        return {"kind": "local", "reachable": True, "cache_entries": len(self._cache)}

    async def close(self) -> None:
        self._cache.clear()
