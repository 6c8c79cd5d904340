"""The registered workers of this gateway process, kept in step with the shared state.

Registrations live in the runtime's :class:`~gateway.state.SharedState` with a TTL (Redis: every
replica sees every worker; no Redis: this process, or every worker process of ``serve --workers N``
through a shared directory). About once a second — and at once after a registration this process
received — :meth:`Registrations.sync` reads them all and adds joined workers' endpoints to the
current runtime's adapter pools, drops those that left (deregistered or expired), and publishes
``worker.registered`` / ``worker.deregistered`` / ``worker.expired``. One per process, kept across
reloads: a new runtime gets the registered endpoints when it starts (:meth:`attach`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from gateway.admin.events import EventBus
from gateway.config.models import Role
from gateway.registry.models import Announcement, Record, changes, decode_records, record_of, tombstone
from gateway.upstream.pool import Endpoint

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("gateway.registry")

SYNC_S = 1.0


class Registrations:
    """Registered workers (``known``: node → live record) and the runtime whose pools hold them."""

    def __init__(self, events: EventBus, sync_s: float = SYNC_S, wall: Callable[[], float] = time.time) -> None:
        self.events = events
        self.sync_s = sync_s
        self.wall = wall
        self.known: dict[str, Record] = {}
        self.runtime: Runtime | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._unpooled: set[tuple[str, str]] = set()  # (node, role) already logged as having no pool

    # -- pools ---------------------------------------------------------------------------------
    def attach(self, runtime: Runtime) -> None:
        """``runtime`` (just started: a reload's, or the first) takes every known worker into its pools."""
        self.runtime = runtime
        for record in self.known.values():
            self._join(runtime, record)

    def _join(self, runtime: Runtime, record: Record) -> list[str]:
        """Add ``record``'s endpoint to the pool of each role it serves; the roles that have a pool."""
        joined = []
        for role, model in sorted(record.adapters.items()):
            pool = runtime.adapter_pools.get(Role(role))
            if pool is None:
                if (record.node, role) not in self._unpooled:
                    self._unpooled.add((record.node, role))
                    log.warning("worker %s serves %s, which is not declared under adapters: not used for it", record.node, role)
                continue
            pool.add(Endpoint(record.url, model=model, tier=record.tier, source="registered"))
            joined.append(role)
        return joined

    def _leave(self, runtime: Runtime, record: Record) -> None:
        for role in record.adapters:
            pool = runtime.adapter_pools.get(Role(role))
            if pool is not None:
                pool.remove(record.url)
        self._unpooled = {key for key in self._unpooled if key[0] != record.node}

    def pooled_roles(self, record: Record) -> list[str]:
        """The roles of ``record`` whose pool in the current runtime holds its endpoint."""
        runtime = self.runtime
        if runtime is None:
            return []
        return sorted(
            role for role in record.adapters
            if (pool := runtime.adapter_pools.get(Role(role))) is not None
            and any(e.url == record.url and e.source == "registered" for e in pool.endpoints)
        )

    # -- store ---------------------------------------------------------------------------------
    async def announce(self, announcement: Announcement) -> Record:
        """Store a registration or heartbeat (idempotent) and bring this process's pools in step."""
        runtime = self._current()
        record = record_of(announcement, self.wall())
        await runtime.state.register_put(record.node, msgspec.json.encode(record), record.ttl_s)
        await self.sync(announced=record)
        return record

    async def withdraw(self, node: str) -> bool:
        """Deregister ``node`` (a tombstone, so every process reports it as such); False when unknown."""
        runtime = self._current()
        record = self.known.get(node) or decode_records(await runtime.state.register_all()).get(node)
        if record is None or record.gone:
            return False
        gone = tombstone(record, self.wall())
        await runtime.state.register_put(node, msgspec.json.encode(gone), gone.ttl_s)
        await self.sync(gone=gone)
        return True

    async def sync(self, announced: Record | None = None, gone: Record | None = None) -> None:
        """Read every registration from the shared state and apply what changed to the pools.
        ``announced``/``gone``: what this process just wrote (counted even if the store lost it)."""
        runtime = self.runtime
        if runtime is None:
            return
        async with self._lock:
            stored = decode_records(await runtime.state.register_all())
            if announced is not None:
                stored[announced.node] = announced
            if gone is not None:
                stored[gone.node] = gone
            joined, left, replaced = changes(self.known, stored)
            runtime = self.runtime  # a reload may have attached a new one meanwhile
            for old, new in replaced:
                self._leave(runtime, old)
                self.known[new.node] = new
                self._join(runtime, new)
                log.info("worker %s re-registered: %s (%s, %s)", new.node, new.url, new.tier, ",".join(sorted(new.adapters)))
                self.events.publish("worker.registered", self._facts(new))
            for record in joined:
                self.known[record.node] = record
                self._join(runtime, record)
                log.info("worker %s registered: %s (%s, %s)", record.node, record.url, record.tier, ",".join(sorted(record.adapters)))
                self.events.publish("worker.registered", self._facts(record))
            for record in left:
                self.known.pop(record.node, None)
                self._leave(runtime, record)
                kind = "worker.deregistered" if (found := stored.get(record.node)) is not None and found.gone else "worker.expired"
                log.log(logging.WARNING if kind == "worker.expired" else logging.INFO, "%s: %s (%s)", kind, record.node, record.url)
                self.events.publish(kind, self._facts(record))
            for node, record in stored.items():  # a heartbeat: the newest record (received_at) is kept
                if node in self.known and not record.gone:
                    self.known[node] = record

    @staticmethod
    def _facts(record: Record) -> dict[str, object]:
        return {"node": record.node, "roles": sorted(record.adapters), "tier": record.tier, "url": record.url}

    def _current(self) -> Runtime:
        if self.runtime is None:
            raise RuntimeError("no runtime attached yet")
        return self.runtime

    # -- background ----------------------------------------------------------------------------
    def start(self) -> None:
        """Sync every ``sync_s`` until :meth:`close` (call with a running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="mpr-registry-sync")

    async def _loop(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception as exc:  # noqa: BLE001 - a bad round must not end the syncing
                log.warning("registry sync failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.sync_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
