"""A keep-alive connection pool per upstream session: ``await session.post(url, ...)`` → :class:`Response`.

What the gateway needs from an HTTP client, and no more: HTTP/1.1 with keep-alive, ``http`` and
``https`` (the system's trust store, or the ``ssl`` context given), a bound on open connections
per session (callers wait for a free one), idle connections closed after ``keepalive_s``, connect /
read / total timeouts, no cookies, no redirects, no proxies from the environment, no
decompression (the gateway asks for ``identity``). A request is one write; an answer's head,
body and end usually arrive in one read and cost no extra wake-up.

Why not aiohttp's client: measured in one run on one core (a fake upstream, c=32), aiohttp's
``ClientSession.post`` + ``read`` cost ≈ 62 µs of CPU per call and this client ≈ 10-12 µs; the
gateway makes one such call per request, four when it refines. The parsing is httptools' (llhttp).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

from gateway.upstream.wire.connection import Connection, Response
from gateway.upstream.wire.errors import ConnectError, ConnectTimeout, Disconnected, ReadTimeout
from gateway.upstream.wire.timeout import NO_TIMEOUT, Timeout

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})  # RFC 9110 9.2.2: safe to send again
_MAX_ROUTES = 4096  # distinct URLs remembered parsed (endpoints × paths: a few dozen in practice)
_default_tls: ssl.SSLContext | None = None


def default_tls() -> ssl.SSLContext:
    """The system trust store's context, built once (building one costs milliseconds)."""
    global _default_tls
    if _default_tls is None:
        _default_tls = ssl.create_default_context()
    return _default_tls


class Origin(NamedTuple):
    """Where a connection goes: scheme, host, port (the pool's key) and the ``host`` header.

    A tuple, not a frozen dataclass: it keys the idle pool on every request, and a dataclass's
    ``__hash__`` and ``__eq__`` are Python functions (two calls per request), a tuple's are C."""

    scheme: str
    host: str
    port: int
    host_header: str


def split_url(url: str) -> tuple[Origin, str]:
    """(origin, request target) of an absolute ``http``/``https`` URL; ``ValueError`` otherwise."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if parts.username is not None or parts.password is not None:  # never sent: say so rather than drop them
        raise ValueError("credentials in an upstream URL are not sent; give the key with api_key_env")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Origin(scheme, host, port, host_header), target


def _header_lines(headers: Mapping[str, str]) -> str:
    lines = []
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"header {name!r} has a character HTTP/1.1 does not allow in it")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


class Session:
    """Keep-alive HTTP/1.1 connections to any number of origins, at most ``max_connections`` open;
    ``retry_stale``: a request whose reused connection closed before any byte of the answer is
    sent once more (off by default: whether that is safe is the caller's to say)."""

    def __init__(
        self,
        max_connections: int = 100,
        *,
        keepalive_s: float = 30.0,
        force_close: bool = False,
        retry_stale: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.max_connections = max(1, max_connections)
        self.retry_stale = retry_stale  # a reused connection dropped before any answer: send once more
        self.keepalive_s = keepalive_s
        self.force_close = force_close  # one exchange per connection
        self.tls = tls
        self.closed = False
        self._idle: dict[Origin, list[Connection]] = {}
        self._open: set[Connection] = set()
        self._connecting = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._routes: dict[str, tuple[Origin, bytes]] = {}
        self._sweep: asyncio.TimerHandle | None = None  # closes idle connections past keepalive_s

    # -- requests

    async def post(self, url: str, *, data: bytes = b"", headers: Mapping[str, str] | None = None, timeout: Timeout = NO_TIMEOUT) -> Response:
        return await self.request("POST", url, data=data, headers=headers, timeout=timeout)

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None, timeout: Timeout = NO_TIMEOUT) -> Response:
        return await self.request("GET", url, headers=headers, timeout=timeout)

    async def request(
        self, method: str, url: str, *, data: bytes | None = None, headers: Mapping[str, str] | None = None, timeout: Timeout = NO_TIMEOUT
    ) -> Response:
        """Send one request; the answer comes back once its head is in (read its body, then
        :meth:`Response.release` it). Raises a :class:`~gateway.upstream.wire.errors.WireError`."""
        if self.closed:
            raise RuntimeError("the session is closed")
        if method == "HEAD":  # its answer's length header describes a body that never comes: not parsed here
            raise ValueError("HEAD requests are not supported by the wire client")
        route = self._routes.get(url)
        if route is None:
            route = self._route(url)
        origin, start = route
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout.total if timeout.total is not None else None
        head = [method.encode("ascii"), b" ", start, b"Host: ", origin.host_header.encode("ascii"), b"\r\n"]
        if headers:
            head.append(_header_lines(headers).encode("utf-8"))
        if data is not None or method in ("POST", "PUT", "PATCH"):
            head.append(b"Content-Length: %d\r\n" % len(data or b""))
        if self.force_close:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        if data:
            head.append(data)
        request = b"".join(head)
        conn = await self._acquire(origin, loop, timeout.connect, deadline)
        try:
            return await conn.exchange(request, timeout.read, deadline)
        except Disconnected as exc:
            if not exc.reused or exc.answered or not (self.retry_stale or method in IDEMPOTENT):
                raise
        # A pooled connection the upstream closed as it was picked (the keep-alive race: an idle
        # timeout on the other side, such as uvicorn's 5 s in front of vLLM): nothing came back.
        # Once more, on the next connection: always for an idempotent method (a health probe's
        # GET), for a POST with ``retry_stale`` (a caller with other endpoints to try, as a
        # target's client, leaves it off and moves on to the next endpoint instead).
        conn = await self._acquire(origin, loop, timeout.connect, deadline)
        return await conn.exchange(request, timeout.read, deadline)

    def _route(self, url: str) -> tuple[Origin, bytes]:
        origin, target = split_url(url)
        route = (origin, f"{target} HTTP/1.1\r\n".encode("utf-8"))
        if len(self._routes) < _MAX_ROUTES:
            self._routes[url] = route
        return route

    # -- the pool

    async def _acquire(self, origin: Origin, loop: asyncio.AbstractEventLoop, connect_s: float | None, deadline: float | None) -> Connection:
        while True:
            if self.closed:  # closed while this request waited for a connection
                raise RuntimeError("the session is closed")
            idle = self._idle.get(origin)
            while idle:
                conn = idle.pop()  # the most recently used: the warmest
                if not conn.closed and loop.time() - conn.idle_since < self.keepalive_s:
                    return conn
                conn.close()
            if len(self._open) + self._connecting < self.max_connections:
                return await self._connect(origin, loop, connect_s, deadline)
            if self._close_one_idle():  # room taken by another origin's idle connection
                continue
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                if deadline is None:
                    await waiter
                else:
                    await asyncio.wait_for(waiter, max(0.0, deadline - loop.time()))
            except BaseException as exc:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, but leaving: pass the turn on
                if isinstance(exc, asyncio.TimeoutError):
                    raise ReadTimeout("no connection to the upstream came free in time") from None
                raise

    async def _connect(self, origin: Origin, loop: asyncio.AbstractEventLoop, connect_s: float | None, deadline: float | None) -> Connection:
        limit = connect_s
        if deadline is not None:
            left = max(0.0, deadline - loop.time())
            limit = left if limit is None else min(limit, left)
        tls = None
        if origin.scheme == "https":
            tls = self.tls or default_tls()
        self._connecting += 1
        try:
            connecting = loop.create_connection(
                lambda: Connection(origin, loop, self._on_idle, self._on_lost),
                origin.host,
                origin.port,
                ssl=tls,
                server_hostname=origin.host if tls is not None else None,
            )
            if limit is None:
                _, conn = await connecting
            else:
                _, conn = await asyncio.wait_for(connecting, limit)
        except asyncio.TimeoutError:
            self._connecting -= 1
            self._wake_one()  # its room is free again
            raise ConnectTimeout(f"no connection to {origin.host_header} within {limit:g}s") from None
        except (OSError, ssl.SSLError) as exc:
            self._connecting -= 1
            self._wake_one()
            raise ConnectError(f"cannot connect to {origin.host_header}: {exc.strerror or exc}") from None
        except BaseException:
            self._connecting -= 1
            self._wake_one()
            raise
        self._connecting -= 1
        if self.closed:
            conn.close()
            raise ConnectError("the session closed while connecting")
        self._open.add(conn)
        return conn  # type: ignore[return-value]

    def _on_idle(self, conn: Connection) -> None:
        if self.closed or self.force_close:
            conn.close()
            return
        self._idle.setdefault(conn.key, []).append(conn)  # oldest first: idle_since only grows along a list
        if self._sweep is None:
            self._sweep = conn.loop.call_later(self.keepalive_s, self._close_expired)
        self._wake_one()

    def _close_expired(self) -> None:
        """Close the idle connections past ``keepalive_s`` (the front of each list); run again
        while any stay idle."""
        self._sweep = None
        if self.closed:
            return
        next_due: float | None = None
        for idle in self._idle.values():
            while idle:
                conn = idle[0]
                due = conn.idle_since + self.keepalive_s
                if due > conn.loop.time():
                    next_due = due if next_due is None else min(next_due, due)
                    break
                conn.close()  # on_lost takes it off the list
                if idle and idle[0] is conn:
                    idle.pop(0)
        if next_due is not None:
            loop = asyncio.get_running_loop()
            self._sweep = loop.call_at(next_due, self._close_expired)

    def _on_lost(self, conn: Connection) -> None:
        self._open.discard(conn)
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _close_one_idle(self) -> bool:
        for idle in self._idle.values():
            if idle:
                idle.pop(0).close()  # the longest idle
                return True
        return False

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def close(self) -> None:
        """Close every connection; requests after this raise."""
        self.closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)  # wake it: it sees the session closed (not a CancelledError)
        self._waiters.clear()


__all__ = ["IDEMPOTENT", "Origin", "Session", "default_tls", "split_url"]
