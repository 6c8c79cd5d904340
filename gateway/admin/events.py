"""The operator's event stream: what changed in the fleet (endpoint up/down, worker registered or
expired, config reloaded), fanned out to ``GET /admin/events`` subscribers.

One :class:`EventBus` per process, kept across reloads (like telemetry). Publishing never blocks
and never fails the caller: a subscriber that does not keep up loses its oldest events (a gap in
``seq`` shows it). Events carry fleet facts only — never prompt text.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.upstream.pool import Endpoint, EndpointPool


@dataclass(frozen=True, slots=True)
class Event:
    """One change: ``kind`` (``endpoint.up``, ``endpoint.down``, ``worker.registered``,
    ``worker.expired``, ``config.reloaded``…), a sequence number, wall-clock time and its facts."""

    seq: int
    kind: str
    at: float
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "at": self.at, "data": self.data}


class EventBus:
    """In-process pub/sub with a ring of recent events (a new subscriber can replay them)."""

    def __init__(self, history: int = 200, queue_size: int = 256) -> None:
        self._seq = itertools.count(1)
        self.recent: deque[Event] = deque(maxlen=history)
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Event]] = set()

    def publish(self, kind: str, data: dict[str, Any] | None = None) -> Event:
        """Record ``kind`` with ``data`` and hand it to every subscriber (never blocks)."""
        event = Event(next(self._seq), kind, time.time(), dict(data or {}))
        self.recent.append(event)
        for queue in self._subscribers:
            if queue.full():  # a slow reader loses its oldest event, never the publisher's time
                queue.get_nowait()
            queue.put_nowait(event)
        return event

    def open(self, replay: int = 0) -> asyncio.Queue[Event]:
        """A subscriber's queue, holding the last ``replay`` recent events; :meth:`close` it when done
        (waiting on its ``get()`` with a timeout is safe, unlike cancelling :meth:`subscribe`)."""
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        for event in list(self.recent)[-replay:] if replay > 0 else ():
            queue.put_nowait(event)
        self._subscribers.add(queue)
        return queue

    def close(self, queue: asyncio.Queue[Event]) -> None:
        self._subscribers.discard(queue)

    async def subscribe(self, replay: int = 0) -> AsyncIterator[Event]:
        """Events from now on (after the last ``replay`` recent ones), until the consumer stops."""
        queue = self.open(replay)
        try:
            while True:
                yield await queue.get()
        finally:
            self.close(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)


def endpoint_facts(pool: EndpointPool, endpoint: Endpoint) -> dict[str, Any]:
    """What an ``endpoint.*`` event says: which pool and endpoint, where it runs, and its last error."""
    kind, _, name = pool.name.partition(":")
    return {
        "pool": pool.name,
        "kind": kind,
        "name": name or kind,
        "url": endpoint.url,
        "node": endpoint.node,
        "tier": endpoint.tier,
        "source": endpoint.source,
        "error": endpoint.last_error,
    }


def endpoint_announcer(bus: EventBus) -> Callable[[EndpointPool, Endpoint], None]:
    """An ``EndpointPool.on_change`` that publishes ``endpoint.up`` / ``endpoint.down`` on ``bus``
    (a probe or a failed call flipped it; the pool itself knows nothing of the bus)."""

    def announce(pool: EndpointPool, endpoint: Endpoint) -> None:
        bus.publish("endpoint.up" if endpoint.up else "endpoint.down", endpoint_facts(pool, endpoint))

    return announce
