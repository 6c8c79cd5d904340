"""State that replicas and worker processes share: one small interface, two implementations.

:class:`SharedState` is what handlers use — never ``if redis:``. :mod:`gateway.state.local` keeps
everything in this process (the default); a Redis implementation makes it shared across processes
and replicas and fails open to the local one when Redis is down.
"""

from __future__ import annotations

from typing import Any, Protocol


class SharedState(Protocol):
    """Shared key-value state: a byte cache with a TTL (the refinement cache lives here)."""

    async def cache_get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or None (missing, expired, or the store unreachable)."""
        ...

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value`` under ``key`` for ``ttl_s`` seconds (best effort: errors are swallowed)."""
        ...

    def status(self) -> dict[str, Any]:
        """What ``/ready`` shows of the store (kind, reachable, entries…)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
