"""Fail-open in front of :class:`~gateway.state.redis_state.RedisState`.

While Redis answers, every call goes to it. The first failure (error or timeout) marks it
unreachable: from then on calls do not touch Redis at all — rate limits fall back to this
process's own buckets, the cache misses and drops writes, verdicts stay local, worker
registrations are the ones this process received itself — and a background task pings with
doubling backoff until Redis answers again. Requests never wait for a reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from redis.exceptions import RedisError

from gateway.state import DownWatcher
from gateway.state.local import LocalState
from gateway.state.redis_state import RedisState
from gateway.state.quota import CounterSpec

log = logging.getLogger("gateway.state")

FAILURES = (RedisError, OSError, TimeoutError)


def next_backoff(delay: float, cap: float) -> float:
    """The wait after ``delay`` failed: doubled, at most ``cap``."""
    return min(cap, delay * 2)


class FailOpenState:
    """:class:`~gateway.state.SharedState`: ``primary`` while reachable, ``fallback`` while not."""

    def __init__(
        self,
        primary: RedisState,
        fallback: LocalState,
        *,
        backoff_s: float = 0.2,
        backoff_max_s: float = 2.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.wall = wall
        self.reachable = True
        self.since = wall()
        self.errors: dict[str, int] = {}
        self.last_error: str | None = None
        self._recovery: asyncio.Task[None] | None = None
        primary.on_listen_error = lambda exc: self._failed("listen", exc)  # noticed without traffic too

    async def cache_get(self, key: str) -> bytes | None:
        if not self.reachable:
            return None
        try:
            return await self.primary.cache_get(key)
        except FAILURES as exc:
            self._failed("cache_get", exc)
            return None

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None:
        if not self.reachable:
            return
        try:
            await self.primary.cache_put(key, value, ttl_s)
        except FAILURES as exc:
            self._failed("cache_put", exc)

    async def record_put(self, key: str, value: bytes, ttl_s: float) -> None:
        await self.fallback.record_put(key, value, ttl_s)  # this server's own copy, for while Redis is down
        if not self.reachable:
            return
        try:
            await self.primary.record_put(key, value, ttl_s)
        except FAILURES as exc:
            self._failed("record_put", exc)

    async def record_get(self, key: str) -> bytes | None:
        if self.reachable:
            try:
                found = await self.primary.record_get(key)
            except FAILURES as exc:
                self._failed("record_get", exc)
            else:
                if found is not None:
                    return found
        return await self.fallback.record_get(key)

    async def take(self, key: str, rate: float, burst: int) -> float:
        if self.reachable:
            try:
                return await self.primary.take(key, rate, burst)
            except FAILURES as exc:
                self._failed("take", exc)
        return self.fallback.take_now(key, rate, burst)

    async def mark_down(self, pool: str, url: str, seconds: float, error: str) -> None:
        if not self.reachable:
            return
        try:
            await self.primary.mark_down(pool, url, seconds, error)
        except FAILURES as exc:
            self._failed("mark_down", exc)

    async def register_put(self, node: str, record: bytes, ttl_s: float) -> None:
        await self.fallback.register_put(node, record, ttl_s)  # what this process heard, for while Redis is down
        if not self.reachable:
            return
        try:
            await self.primary.register_put(node, record, ttl_s)
        except FAILURES as exc:
            self._failed("register_put", exc)

    async def register_all(self) -> dict[str, bytes]:
        return await self._either("register_all")

    async def reserve(self, counters: Sequence[CounterSpec], amount: int) -> int:
        return await self._either("reserve", counters, amount)  # this process's own counters meanwhile

    async def settle(self, counters: Sequence[CounterSpec], delta: int) -> None:
        await self._either("settle", counters, delta)

    async def usage_add(self, minute: int, fields: Mapping[str, int]) -> None:
        await self._either("usage_add", minute, fields)

    async def usage_since(self, first: int, last: int) -> dict[str, int]:
        return await self._either("usage_since", first, last)

    async def _either(self, op: str, *args: Any) -> Any:
        """``op`` on Redis while it is reachable; on this process's own state when it is not, or
        when this call fails (the failure marks Redis unreachable)."""
        if self.reachable:
            try:
                return await getattr(self.primary, op)(*args)
            except FAILURES as exc:
                self._failed(op, exc)
        return await getattr(self.fallback, op)(*args)

    def watch_down(self, watcher: DownWatcher) -> None:
        self.primary.watch_down(watcher)  # its listener resubscribes by itself

    def status(self) -> dict[str, Any]:
        return {
            **self.primary.status(),
            "reachable": self.reachable,
            "since": round(self.since, 3),
            "errors": dict(self.errors),
            "last_error": self.last_error,
        }

    async def close(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
            self._recovery = None
        await self.primary.close()
        await self.fallback.close()

    def _failed(self, op: str, exc: BaseException) -> None:
        self.errors[op] = self.errors.get(op, 0) + 1
        self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if not self.reachable:
            return
        self.reachable = False
        self.since = self.wall()
        log.warning("shared state unreachable (%s on %s): falling back to local state", self.last_error, op)
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.get_running_loop().create_task(self._recover(), name="mpr-state-recovery")

    async def _recover(self) -> None:
        """Ping with backoff until Redis answers, then mark it reachable."""
        delay = self.backoff_s
        while True:
            await asyncio.sleep(delay)
            try:
                await self.primary.ping()
            except FAILURES as exc:
                self.errors["ping"] = self.errors.get("ping", 0) + 1
                self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                delay = next_backoff(delay, self.backoff_max_s)
                continue
            self.reachable = True
            self.since = self.wall()
            log.warning("shared state reachable again: %s", self.primary.status().get("url"))
            return
