"""One keep-alive HTTP/1.1 connection (an asyncio protocol) and the answer it is reading.

The answer is parsed by ``httptools`` (llhttp, the parser uvicorn serves with). A connection
carries one exchange at a time: :meth:`Connection.exchange` writes the request and returns the
:class:`Response` once its status line and headers are in; the body follows into the response,
which the caller reads whole (:meth:`Response.read`) or as it comes (:meth:`Response.iter_any`).
Reading pauses while more than ``HIGH_WATER`` bytes wait unread (a slow client never makes the
gateway buffer a whole stream). One timer per exchange enforces the read timeout (the longest gap
between arrivals, not counted while paused) and the total deadline, re-armed lazily: a byte that
arrives costs a store, not a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httptools

from gateway.upstream.wire.errors import Disconnected, ProtocolError, ReadTimeout, WireError

HIGH_WATER = 256 * 1024  # bytes of answer waiting unread before the socket stops being read


class Response:
    """An upstream's answer: ``status``, ``headers`` (lowercased names; repeated ones joined with
    ``", "``) and a body that arrives behind them. Call :meth:`release` (the connection goes back
    to its pool when the answer was read to its end) or :meth:`close` when done with it."""

    __slots__ = ("status", "headers", "_conn", "_chunks", "_buffered", "_done", "_error", "_waiter")

    def __init__(self, conn: Connection, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.headers = headers
        self._conn: Connection | None = conn
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    # -- fed by the connection

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and self._conn is not None:
            self._conn.pause()
        self._wake()

    def _finish(self, error: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _wait(self) -> None:
        conn = self._conn
        if conn is not None:
            conn.resume()
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        except BaseException:
            self.close()  # cancelled mid-answer: the connection's state is unknown
            raise

    def _take(self) -> bytes:
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        return data

    # -- the caller's side

    async def read(self) -> bytes:
        """The whole body (raises the :class:`WireError` that cut it short)."""
        while not self._done:
            await self._wait()
        if self._error is not None:
            raise self._error
        return self._take() if self._chunks else b""

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body as it arrives: each item is every byte that came since the last one."""
        while True:
            if self._chunks:
                yield self._take()
                continue
            if self._done:
                if self._error is not None:
                    raise self._error
                return
            await self._wait()

    def release(self) -> None:
        """Done with the answer: the connection is reused when the answer was read to its end."""
        conn, self._conn = self._conn, None
        if conn is not None:
            if self._done and self._error is None:
                conn.finished()
            else:
                conn.close()

    def close(self) -> None:
        """Done with the answer, and the connection is closed (a client that left mid-stream)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        if not self._done:
            self._finish(Disconnected("the answer was closed before its end", answered=True))


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection to an origin; ``on_idle(conn)`` / ``on_lost(conn)`` tell its pool."""

    __slots__ = (
        "key", "transport", "loop", "on_idle", "on_lost", "closed", "reused", "idle_since",
        "_parser", "_names", "_values", "_response", "_head", "_keep_alive", "_last_read", "_read_s",
        "_deadline", "_timer", "_paused", "_answered", "_complete", "_length_known",
    )  # fmt: skip

    def __init__(self, key: Any, loop: asyncio.AbstractEventLoop, on_idle: Callable[[Connection], None], on_lost: Callable[[Connection], None]) -> None:
        self.key = key
        self.loop = loop
        self.on_idle = on_idle
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False  # it has carried an exchange before
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._names: list[bytes] = []
        self._values: list[bytes] = []
        self._response: Response | None = None
        self._head: asyncio.Future[Response] | None = None
        self._keep_alive = False
        self._last_read = 0.0
        self._read_s: float | None = None
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._answered = False
        self._complete = False
        self._length_known = True  # the answer's end is marked (a length or chunks), not the connection's

    # -- the exchange

    async def exchange(self, request: bytes, read_s: float | None, deadline: float | None) -> Response:
        """Write ``request`` (head and body) and wait for the answer's head."""
        transport = self.transport
        if self.closed or transport is None:
            raise Disconnected("the connection closed before the request was sent", reused=self.reused)
        self._names.clear()
        self._values.clear()
        self._response = None
        self._answered = self._complete = False
        self._read_s, self._deadline = read_s, deadline
        self._last_read = self.loop.time()
        head = self._head = self.loop.create_future()
        self._arm()
        try:
            transport.write(request)
        except (OSError, RuntimeError) as exc:  # the transport closed under us
            self._head = None
            self.close()
            raise Disconnected(f"the request could not be sent ({type(exc).__name__})", reused=self.reused) from None
        try:
            return await head
        except BaseException:
            self.close()
            raise
        finally:
            self._head = None

    def finished(self) -> None:
        """The answer was read to its end: back to the pool, or closed if either side said so."""
        if self.closed:
            return
        if not self._keep_alive:
            self.close()
            return
        self.resume()  # the answer's last bytes may have paused reading: an idle connection reads again
        self.reused = True
        self._response = None
        self.idle_since = self.loop.time()
        self.on_idle(self)

    def close(self) -> None:
        if not self.closed:
            self._shut(Disconnected("the connection was closed", answered=self._answered, reused=self.reused))

    def _shut(self, error: WireError, *, abort: bool = False) -> None:
        """Closed for good: the exchange in flight ends with ``error``, the pool forgets it."""
        if self.closed:
            return
        self.closed = True
        self._disarm()
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()
        self._fail(error)
        self.on_lost(self)

    def pause(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self._last_read = self.loop.time()  # the gap while paused was the reader's, not the upstream's
            self.transport.resume_reading()

    def _fail(self, error: WireError) -> None:
        head = self._head
        if head is not None and not head.done():
            head.set_exception(error)
        response = self._response
        if response is not None and not self._complete:
            response._finish(error)

    # -- timers: one handle per exchange, re-armed only when it fires early

    def _arm(self) -> None:
        read_s, deadline = self._read_s, self._deadline
        if read_s is None and deadline is None:
            return
        when = self._last_read + read_s if read_s is not None else deadline
        if deadline is not None and when > deadline:  # type: ignore[operator]
            when = deadline
        self._timer = self.loop.call_at(when, self._check)  # type: ignore[arg-type]

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self._complete or self.closed:
            return
        now = self.loop.time()
        if self._paused:
            self._last_read = now
        late = self._deadline is not None and now >= self._deadline
        if not late and (self._read_s is None or now < self._last_read + self._read_s):
            self._arm()
            return
        self._shut(ReadTimeout("the upstream's answer did not arrive in time"), abort=True)

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._head is None and self._response is None:  # bytes nobody asked for: not HTTP we can trust
            self.close()
            return
        self._last_read = self.loop.time()
        self._answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"the upstream's answer is not valid HTTP/1.1 ({exc})"))
            self.close()

    def eof_received(self) -> bool | None:
        self._end_of_stream()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_of_stream()
        if not self.closed:
            self._shut(Disconnected("the upstream closed the connection", answered=self._answered, reused=self.reused))

    def _end_of_stream(self) -> None:
        """The upstream closed its side: an answer with no length ends here (HTTP/1.0 style)."""
        self._keep_alive = False
        response = self._response
        if response is not None and not self._complete and not self._length_known:
            self._complete = True
            self._disarm()
            response._finish()

    # -- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._response is None:  # trailers of a chunked body are not headers
            self._names.append(name)
            self._values.append(value)

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self._names.clear()
            self._values.clear()
            return
        headers: dict[str, str] = {}
        length_known = False
        for raw_name, raw_value in zip(self._names, self._values):
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if name in headers:
                headers[name] = f"{headers[name]}, {value}"
            else:
                headers[name] = value
            if name == "content-length" or (name == "transfer-encoding" and "chunked" in value.lower()):
                length_known = True
        self._length_known = length_known or status in (204, 304)
        self._keep_alive = self._parser.should_keep_alive()
        response = self._response = Response(self, status, headers)
        head = self._head
        if head is not None and not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        response = self._response
        if response is not None:
            response._feed(body)

    def on_message_complete(self) -> None:
        response = self._response
        if response is None:  # the end of an interim answer
            return
        self._keep_alive = self._keep_alive and self._parser.should_keep_alive()
        self._complete = True
        self._disarm()
        response._finish()


__all__ = ["HIGH_WATER", "Connection", "Response"]
