"""State that replicas and worker processes share: one small interface, two implementations.

:class:`SharedState` is what handlers use — never ``if redis:``. :mod:`gateway.state.local` keeps
everything in this process (the default); :mod:`gateway.state.redis` makes it shared across
processes and replicas, and :mod:`gateway.state.failopen` falls back to the local one while Redis
is down. :func:`gateway.state.build.build_state` picks from the config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

DownWatcher = Callable[[str, str, float, str], None]
"""(pool name, endpoint URL, seconds out of rotation, error) — a verdict another process published."""


class SharedState(Protocol):
    """Shared state: a byte cache with a TTL (the refinement cache lives here), per-key token
    buckets (rate limits), endpoint cool-down verdicts and worker registrations."""

    async def cache_get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or None (missing, expired, or the store unreachable)."""
        ...

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value`` under ``key`` for ``ttl_s`` seconds (best effort: errors are swallowed)."""
        ...

    async def record_put(self, key: str, value: bytes, ttl_s: float) -> None:
        """Keep a small durable record (who created a response, a canary's verdict) for ``ttl_s``:
        every sharing process sees it — the workers of one server too, without Redis — and the
        cache's LRU never evicts it (best effort)."""
        ...

    async def record_get(self, key: str) -> bytes | None:
        """The record stored under ``key``, or None (missing, expired, or the store unreachable)."""
        ...

    async def take(self, key: str, rate: float, burst: int) -> float:
        """Take one token from ``key``'s bucket (``rate`` per second up to ``burst``): 0.0 when
        allowed, else the seconds until a token is available. Atomic across the sharing processes."""
        ...

    async def mark_down(self, pool: str, url: str, seconds: float, error: str) -> None:
        """Publish that ``url`` of ``pool`` failed: every other sharing process takes it out of
        rotation for ``seconds`` (best effort)."""
        ...

    def watch_down(self, watcher: DownWatcher) -> None:
        """Call ``watcher`` for each verdict other processes publish (call with a running loop)."""
        ...

    async def register_put(self, node: str, record: bytes, ttl_s: float) -> None:
        """Store worker ``node``'s registration for ``ttl_s`` seconds (a heartbeat renews it); every
        sharing process sees it (best effort: errors are swallowed)."""
        ...

    async def register_all(self) -> dict[str, bytes]:
        """Every registration not yet expired: node → record."""
        ...

    async def reserve(self, counters: Sequence[tuple[str, int, float]], amount: int) -> int:
        """Add ``amount`` to every counter ``(key, limit, ttl_s)`` unless one would pass its limit:
        -1 when charged, else the index of that counter (nothing charged). Atomic across the
        sharing processes (tenants' token limits, :mod:`gateway.state.quota`)."""
        ...

    async def settle(self, counters: Sequence[tuple[str, int, float]], delta: int) -> None:
        """Add ``delta`` (negative: give back) to every counter (best effort)."""
        ...

    async def usage_add(self, minute: int, fields: Mapping[str, int]) -> None:
        """Add ``fields`` (name → tokens) to the usage bucket of ``minute`` (``int(time // 60)``)."""
        ...

    async def usage_since(self, first: int, last: int) -> dict[str, int]:
        """The usage buckets of minutes ``first``..``last``, summed per field."""
        ...

    def status(self) -> dict[str, Any]:
        """What ``/ready`` shows of the store (kind, reachable, entries…)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
