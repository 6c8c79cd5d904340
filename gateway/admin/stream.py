"""``GET /admin/events``: the operator's :class:`~gateway.admin.events.EventBus` as server-sent events.

Each event is ``id: <seq>`` / ``event: <kind>`` / ``data: <json>``; a ``: ping`` comment every
:data:`PING_S` keeps proxies from closing an idle stream; ``retry:`` tells a client how soon to
reconnect. ``?replay=N`` first sends the last N recorded events. The stream ends when the client
goes (Litestar cancels it) and as soon as the gateway starts draining, so a graceful shutdown never
waits on an open stream. A gap in ``id`` means the client was too slow and lost events.

A stream holds no runtime: the bus is kept across reloads and ``draining`` is read from the
current runtime, so its path is :data:`UNPINNED` (the fast path does not count it in flight on the
runtime it opened on) and a reload retires the old runtime while dashboards stay connected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from litestar import Request, get
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from gateway.admin.events import Event, EventBus
from gateway.errors import ServiceUnavailable
from gateway.reload.live import RuntimeRef

PING_S = 15.0
RETRY_MS = 2000
CHECK_S = 0.25  # how often an idle stream looks whether the gateway is draining
MAX_REPLAY = 200
EVENTS_PATH = "/admin/events"
UNPINNED = frozenset({EVENTS_PATH})  # paths whose requests do not keep their runtime alive


def sse_frame(event: Event) -> bytes:
    """One event in the SSE wire format."""
    data = msgspec.json.encode(event.as_dict())
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.kind.encode(), data)


def replay_count(raw: str | None) -> int:
    """``?replay=`` as a count within 0..:data:`MAX_REPLAY` (anything else: 0)."""
    try:
        return max(0, min(MAX_REPLAY, int(raw or 0)))
    except ValueError:
        return 0


async def event_frames(
    bus: EventBus, over: Callable[[], bool], replay: int = 0, ping_s: float = PING_S, check_s: float = CHECK_S
) -> AsyncIterator[bytes]:
    """SSE frames from ``bus`` until ``over()`` (checked every ``check_s``) or the consumer stops."""
    queue = bus.open(replay)
    try:
        yield b"retry: %d\n: mpr-gateway events\n\n" % RETRY_MS
        next_ping = time.monotonic() + ping_s
        while not over():
            wait = max(0.0, min(check_s, next_ping - time.monotonic()))
            try:
                event = await asyncio.wait_for(queue.get(), timeout=wait)
            except asyncio.TimeoutError:
                if time.monotonic() >= next_ping:
                    yield b": ping\n\n"
                    next_ping = time.monotonic() + ping_s
                continue
            yield sse_frame(event)
    finally:
        bus.close(queue)


def events_route(ref: RuntimeRef) -> ControllerRouterHandler:
    @get(EVENTS_PATH)
    async def admin_events(request: Request[Any, Any, Any]) -> Stream:
        runtime = ref.current.runtime
        runtime.admin.check(request.headers.get("authorization"))
        if ref.draining:
            raise ServiceUnavailable("The gateway is shutting down.", headers={"retry-after": "1"})
        frames = event_frames(runtime.events, lambda: ref.draining, replay_count(request.query_params.get("replay")))
        return Stream(
            frames,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    return admin_events
