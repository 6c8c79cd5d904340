"""One served configuration (:class:`Live`) and the holder of the current one (:class:`RuntimeRef`).

A request reads ``ref.current`` once, at its start (the fast path pins it in the ASGI scope under
:data:`LIVE_KEY`), and uses that :class:`Live` to its end, streams included; a reload replaces
``ref.current`` with one assignment. Each :class:`Live` counts its requests in flight, so the
reloader stops the old runtime only when the last of them is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from gateway.config.source import ConfigSource
from gateway.runtime import Runtime

LIVE_KEY = "mpr_live"  # scope key: the Live a request started on
CONFIG_HEADER = "x-mpr-config"
FALLBACK = "/*"  # a table key ending in it: the fallback for every path under its prefix


class Live:
    """A started runtime, its serving objects (path → serving: the fast path's table, which the
    Litestar routes share) and where its config came from."""

    __slots__ = ("runtime", "routes", "exact", "fallbacks", "source", "config_header", "max_body", "limited", "in_flight", "_idle")

    def __init__(self, runtime: Runtime, routes: Mapping[str, Any], source: ConfigSource) -> None:
        self.runtime = runtime
        self.routes = dict(routes)
        self.exact = {path: serving for path, serving in routes.items() if not path.endswith(FALLBACK)}
        self.fallbacks = tuple((path[: -len(FALLBACK)] + "/", serving) for path, serving in routes.items() if path.endswith(FALLBACK))
        self.source = source
        self.config_header = (CONFIG_HEADER.encode(), source.hash.encode())
        server = runtime.config.server
        self.max_body: float = server.max_body_bytes or float("inf")
        self.limited = server.rate_limit.requests_per_s > 0  # off: no await for it
        self.in_flight = 0
        self._idle: asyncio.Event | None = None  # set up by :meth:`wait_idle` (a retiring Live)

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no request that started on this Live is in flight (call after the swap)."""
        if self.in_flight == 0:
            return
        self._idle = asyncio.Event()
        if self.in_flight == 0:
            return
        await self._idle.wait()


class RuntimeRef:
    """The current :class:`Live`; ``draining`` (set by SIGTERM) reads and writes the current
    runtime's flag, and a reload keeps it."""

    __slots__ = ("current",)

    def __init__(self, live: Live) -> None:
        self.current = live

    @property
    def runtime(self) -> Runtime:
        return self.current.runtime

    @property
    def draining(self) -> bool:
        return self.current.runtime.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self.current.runtime.draining = value

    def swap(self, live: Live) -> Live:
        """Make ``live`` current (one assignment; it inherits ``draining``); returns the old one."""
        old = self.current
        live.runtime.draining = old.runtime.draining
        self.current = live
        return old
