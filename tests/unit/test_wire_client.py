"""The wire client (:mod:`gateway.upstream.wire`) against loopback peers: bodies of every framing,
keep-alive reuse, the pool's bound, timeouts, broken upstreams, backpressure, cancellation and
closing. Peers are ``aiohttp.web`` apps or raw ``asyncio`` servers that misbehave byte by byte."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from aiohttp import web

from gateway.upstream.wire import (
    ConnectError,
    ConnectTimeout,
    Disconnected,
    ProtocolError,
    ReadTimeout,
    Session,
    Timeout,
    WireError,
)
from gateway.upstream.wire.connection import HIGH_WATER

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
async def session() -> AsyncIterator[Session]:
    """A session of 4 connections, closed after the test."""
    client = Session(4)
    yield client
    await client.close()


# -- peers


class Request:
    """One request as the peer read it off the wire."""

    def __init__(self, head: bytes, body: bytes) -> None:
        self.head = head
        lines = head.decode("latin-1").split("\r\n")
        self.method, self.target, self.version = lines[0].split(" ")
        self.header_lines = [line for line in lines[1:] if line]
        self.headers: dict[str, str] = {}
        for line in self.header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.body = body


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on a connection, ``None`` once the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        request = Request(head, b"")
        request.body = await reader.readexactly(int(request.headers.get("content-length", "0")))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return request


Handler = Callable[["Peer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Peer:
    """A raw TCP server on 127.0.0.1 (port 0): ``handler(peer, reader, writer)`` serves each
    connection. Counts accepted connections and the most open at once; records requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self.requests: list[Request] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Peer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            await self.handler(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # the peer is shutting down (a cancelled serving task is logged as an error)
        finally:
            self.open -= 1
            writer.close()
            self._tasks.discard(task)

    async def next_request(self, reader: asyncio.StreamReader) -> Request | None:
        request = await read_request(reader)
        if request is not None:
            self.requests.append(request)
        return request


async def keep_alive(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers ``ok`` to every request on the connection until the client closes it."""
    while await peer.next_request(reader) is not None:
        writer.write(OK)
        await writer.drain()


def stalls_on(path: str, head: bytes) -> Handler:
    """A keep-alive peer answering ``OK``, except to ``path``: ``head`` (the start of an answer),
    then nothing until the client closes the connection."""

    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await peer.next_request(reader)) is not None:
            if request.target == path:
                writer.write(head)
                await writer.drain()
                await reader.read()  # until the client closes
                return
            writer.write(OK)
            await writer.drain()

    return handler


async def eventually(condition: Callable[[], bool], within: float = 1.0) -> None:
    """Wait (a loaded machine may be slow) until ``condition()`` holds; fail after ``within`` s."""
    end = time.monotonic() + within
    while not condition():
        assert time.monotonic() < end, "condition never held"
        await asyncio.sleep(0.005)


async def web_peer(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def refused_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _fast() -> Iterator[None]:
    """Every test here is loopback-only and quick."""
    start = time.monotonic()
    yield
    assert time.monotonic() - start < 2.0


# -- 1. bodies


async def test_a_content_length_body_is_read_whole() -> None:
    payload = b"x" * 10_000 + b"end"

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=payload, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/blob", handler)
    runner, base = await web_peer(app)
    session = Session(4)
    try:
        response = await session.get(base + "/blob")
        assert response.status == 200
        assert response.headers["content-length"] == str(len(payload))
        assert await response.read() == payload
        response.release()
    finally:
        await session.close()
        await runner.cleanup()


async def test_a_chunked_body_comes_out_of_iter_any_as_it_arrives() -> None:
    parts = [b"alpha-", b"beta-", b"gamma-", b"delta"]
    received_part = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in parts:
            received_part.clear()
            await response.write(part)
            await asyncio.sleep(0.01)
            # the next chunk only goes out once the client has seen this one: iter_any must yield
            # what came without waiting for the body's end
            await asyncio.wait_for(received_part.wait(), 1.0)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/stream", handler)
    runner, base = await web_peer(app)
    session = Session(4)
    try:
        response = await session.get(base + "/stream")
        assert response.status == 200
        assert "chunked" in response.headers["transfer-encoding"]
        got: list[bytes] = []
        async for chunk in response.iter_any():
            assert chunk
            got.append(chunk)
            assert b"".join(got) == b"".join(parts[: len(got)])  # chunk by chunk, in order
            received_part.set()
        assert b"".join(got) == b"".join(parts)
        assert len(got) == len(parts)  # one item per chunk sent with a pause between them
        response.release()
        assert session.open_connections == 1  # a chunked body's end is marked: the connection stays
    finally:
        await session.close()
        await runner.cleanup()


async def test_a_body_without_length_ends_when_the_server_closes(session: Session) -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst ")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"second")
        await writer.drain()
        writer.close()

    async with Peer(handler) as peer:
        response = await session.get(peer.url + "/old")
        assert response.status == 200
        assert "content-length" not in response.headers
        assert await response.read() == b"first second"
        response.release()
        await eventually(lambda: session.open_connections == 0)  # never reused: its end was the close


async def test_a_204_has_no_body_and_keeps_the_connection(session: Session) -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await peer.next_request(reader) is not None:
            writer.write(b"HTTP/1.1 204 No Content\r\nX-Seen: yes\r\n\r\n")
            await writer.drain()

    async with Peer(handler) as peer:
        for _ in range(2):
            response = await asyncio.wait_for(session.post(peer.url + "/nothing", data=b"{}"), 1.0)
            assert response.status == 204
            assert response.headers["x-seen"] == "yes"
            assert await asyncio.wait_for(response.read(), 1.0) == b""
            response.release()
        assert peer.accepted == 1


# -- 2. keep-alive


async def test_two_sequential_requests_share_one_connection(session: Session) -> None:
    async with Peer(keep_alive) as peer:
        for _ in range(3):
            response = await session.get(peer.url + "/a")
            assert await response.read() == b"ok"
            response.release()
            assert session.open_connections == 1
        assert peer.accepted == 1
        assert len(peer.requests) == 3


async def test_connection_close_from_the_server_means_a_new_connection_next_time(session: Session) -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        await reader.read()  # leave the closing to the client: it must not reuse the connection anyway

    async with Peer(handler) as peer:
        for expected in (1, 2):
            response = await session.get(peer.url + "/a")
            assert await response.read() == b"ok"
            response.release()
            assert session.open_connections == 0
            assert peer.accepted == expected
        await eventually(lambda: peer.open == 0)


async def test_force_close_opens_one_connection_per_request() -> None:
    async with Peer(keep_alive) as peer:  # a peer that would keep the connection alive
        session = Session(4, force_close=True)
        try:
            for expected in (1, 2, 3):
                response = await session.get(peer.url + "/a")
                assert await response.read() == b"ok"
                response.release()
                assert session.open_connections == 0
                assert peer.accepted == expected
            assert all(request.headers.get("connection") == "close" for request in peer.requests)
            await eventually(lambda: peer.open == 0)  # the client closed each one
        finally:
            await session.close()


# -- 3. an idle pooled connection the server closed


async def test_a_pooled_connection_the_server_closed_while_idle_is_replaced(session: Session) -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        writer.write(OK)  # keep-alive by HTTP/1.1's default ...
        await writer.drain()
        writer.close()  # ... then closed while idle (a keep-alive timeout)

    async with Peer(handler) as peer:
        response = await session.get(peer.url + "/a")
        assert await response.read() == b"ok"
        response.release()
        await eventually(lambda: session.open_connections == 0)  # the pool saw the close
        second = await session.get(peer.url + "/b")
        assert await second.read() == b"ok"
        second.release()
        assert peer.accepted == 2
        assert [request.target for request in peer.requests] == ["/a", "/b"]


async def test_a_reused_connection_dropped_before_any_answer_is_retried_once_on_the_next() -> None:
    # the keep-alive race made deterministic: the server takes the second request, then closes
    # without a byte of answer; the client sends it again on a fresh connection
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        writer.write(OK)
        await writer.drain()
        if peer.accepted == 1:
            await peer.next_request(reader)
            writer.close()
            return
        await peer.next_request(reader)

    session = Session(4, retry_stale=True)
    async with Peer(handler) as peer:
        response = await session.get(peer.url + "/a")
        assert await response.read() == b"ok"
        response.release()
        again = await asyncio.wait_for(session.get(peer.url + "/b"), 1.0)
        assert await again.read() == b"ok"
        again.release()
        assert [r.target for r in peer.requests] == ["/a", "/b", "/b"]
        assert peer.accepted == 2
        assert session.open_connections == 1
    await session.close()


async def test_without_retry_stale_a_post_on_a_reused_connection_dropped_before_any_answer_is_disconnected(session: Session) -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        writer.write(OK)
        await writer.drain()
        await peer.next_request(reader)
        writer.close()

    async with Peer(handler) as peer:
        response = await session.post(peer.url + "/a", data=b"{}")
        assert await response.read() == b"ok"
        response.release()
        with pytest.raises(Disconnected) as caught:
            await asyncio.wait_for(session.post(peer.url + "/b", data=b"{}"), 1.0)
        assert (caught.value.reused, caught.value.answered) == (True, False)
        assert peer.accepted == 1  # the caller decides where to try again


async def test_a_get_on_a_reused_connection_dropped_before_any_answer_is_sent_again(session: Session) -> None:
    # idempotent: a health probe meeting the keep-alive race is not a failed probe
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        writer.write(OK)
        await writer.drain()
        if peer.accepted == 1:
            await peer.next_request(reader)
            writer.close()
            return
        await peer.next_request(reader)

    async with Peer(handler) as peer:
        for path in ("/models", "/models"):
            response = await asyncio.wait_for(session.get(peer.url + path), 1.0)
            assert await response.read() == b"ok"
            response.release()
        assert peer.accepted == 2
        assert len(peer.requests) == 3


async def test_idle_connections_past_keepalive_s_are_closed_without_traffic() -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await peer.next_request(reader) is not None:
            await asyncio.sleep(0.05)  # concurrent requests get connections of their own
            writer.write(OK)
            await writer.drain()

    session = Session(8, keepalive_s=0.2)
    try:
        async with Peer(handler) as peer:
            answers = await asyncio.gather(*(session.get(peer.url + "/x") for _ in range(3)))
            for response in answers:
                assert await response.read() == b"ok"
                response.release()
            assert session.open_connections == 3
            await eventually(lambda: session.open_connections == 0)  # no request came to look at them
            await eventually(lambda: peer.open == 0)
    finally:
        await session.close()


async def test_a_fresh_connection_dropped_before_any_answer_is_not_retried() -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        writer.close()  # took the request, never answered: it may have been processed

    session = Session(4, retry_stale=True)  # even so: only a reused connection is the keep-alive race
    async with Peer(handler) as peer:
        with pytest.raises(Disconnected) as caught:
            await asyncio.wait_for(session.post(peer.url + "/once", data=b"{}"), 1.0)
        assert caught.value.reused is False
        assert caught.value.answered is False
        assert peer.accepted == 1
        assert session.open_connections == 0
    await session.close()


async def test_a_reused_connection_that_drops_twice_raises_disconnected_reused() -> None:
    # two pooled connections, both closed by the server after the next request: one retry, then the error
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        await asyncio.sleep(0.05)  # both first requests are in flight together: two connections
        writer.write(OK)
        await writer.drain()
        await peer.next_request(reader)
        writer.close()

    session = Session(4, retry_stale=True)
    async with Peer(handler) as peer:
        first = await asyncio.gather(session.get(peer.url + "/a"), session.get(peer.url + "/a"))
        for response in first:
            assert await response.read() == b"ok"
            response.release()
        assert peer.accepted == 2
        with pytest.raises(Disconnected) as caught:
            await asyncio.wait_for(session.get(peer.url + "/b"), 1.0)
        assert caught.value.reused is True
        assert caught.value.answered is False
        assert [r.target for r in peer.requests].count("/b") == 2  # sent, then sent once more
        assert session.open_connections == 0
    await session.close()


# -- 4. connect and timeouts


async def test_a_refused_connection_is_a_connect_error(session: Session) -> None:
    with pytest.raises(ConnectError) as caught:
        await session.get(f"http://127.0.0.1:{refused_port()}/x", timeout=Timeout(connect=1.0))
    assert isinstance(caught.value, ConnectionError)
    assert isinstance(caught.value, WireError)
    assert session.open_connections == 0


async def test_headers_then_silence_is_a_read_timeout(session: Session) -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        await writer.drain()
        await reader.read()  # stalls until the client goes

    async with Peer(handler) as peer:
        started = time.monotonic()
        response = await session.get(peer.url + "/slow", timeout=Timeout(read=0.2))
        assert response.status == 200
        with pytest.raises(ReadTimeout) as caught:
            await response.read()
        elapsed = time.monotonic() - started
        assert isinstance(caught.value, TimeoutError)
        assert 0.15 <= elapsed < 0.8
        assert session.open_connections == 0
        await eventually(lambda: peer.open == 0)  # the connection was dropped


async def test_no_head_at_all_is_a_read_timeout_from_the_request(session: Session) -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        await reader.read()

    async with Peer(handler) as peer:
        with pytest.raises(ReadTimeout):
            await session.get(peer.url + "/silent", timeout=Timeout(read=0.2))
        assert session.open_connections == 0


async def test_a_dripping_server_hits_the_total_deadline(session: Session) -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        while True:  # a byte every 0.1 s: never a read timeout, never an end
            writer.write(b".")
            await writer.drain()
            await asyncio.sleep(0.1)

    async with Peer(handler) as peer:
        started = time.monotonic()
        response = await session.get(peer.url + "/drip", timeout=Timeout(read=0.25, total=0.3))
        got = b""
        with pytest.raises(ReadTimeout) as caught:
            async for chunk in response.iter_any():
                got += chunk
        elapsed = time.monotonic() - started
        assert isinstance(caught.value, TimeoutError)
        assert got and set(got) == {ord(".")}
        assert 0.25 <= elapsed < 0.8
        assert session.open_connections == 0


# -- 5. broken answers


async def test_a_drop_mid_body_is_disconnected_answered(session: Session) -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.close()

    async with Peer(handler) as peer:
        response = await session.get(peer.url + "/cut")
        with pytest.raises(Disconnected) as caught:
            await asyncio.wait_for(response.read(), 1.0)
        assert caught.value.answered is True
        assert caught.value.reused is False
        assert session.open_connections == 0


async def test_garbage_instead_of_http_is_a_protocol_error(session: Session) -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        writer.write(b"NOT HTTP\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with Peer(handler) as peer:
        with pytest.raises(ProtocolError):
            await asyncio.wait_for(session.get(peer.url + "/x"), 1.0)
        assert session.open_connections == 0


# -- 6. the pool's bound


async def test_max_connections_one_serves_two_concurrent_requests_over_one_connection() -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await peer.next_request(reader) is not None:
            await asyncio.sleep(0.05)  # long enough for the two requests to overlap
            writer.write(OK)
            await writer.drain()

    async with Peer(handler) as peer:
        session = Session(1)

        async def call(path: str) -> bytes:
            response = await session.get(peer.url + path, timeout=Timeout(total=1.0))
            body = await response.read()
            response.release()
            return body

        try:
            assert await asyncio.gather(call("/one"), call("/two")) == [b"ok", b"ok"]
            assert peer.max_open == 1
            assert sorted(request.target for request in peer.requests) == ["/one", "/two"]
            assert session.open_connections == 1
        finally:
            await session.close()


# -- 7. header injection


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb"])
async def test_a_header_value_with_a_line_break_is_refused_and_nothing_is_sent(value: str, session: Session) -> None:
    async with Peer(keep_alive) as peer:
        with pytest.raises(ValueError):
            await session.post(peer.url + "/x", data=b"{}", headers={"X-Thing": value})
        await asyncio.sleep(0.05)
        assert peer.accepted == 0
        assert peer.requests == []
        assert session.open_connections == 0


# -- 8. what the peer receives, and repeated headers


async def test_the_request_on_the_wire_and_repeated_answer_headers(session: Session) -> None:
    body = b'{"model": "m", "x": "\xc3\xa9"}\x00\xff\r\n'

    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await peer.next_request(reader) is not None:
            writer.write(
                b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\nX-Multi: one\r\nx-multi: two\r\n"
                b"X-MiXeD-Case: Value\r\nX-Multi: three\r\n\r\ndone"
            )
            await writer.drain()

    async with Peer(handler) as peer:
        response = await session.post(
            peer.url + "/v1/chat/completions?api-version=2024-01&x=a%20b",
            data=body,
            headers={"Authorization": "Bearer k-123", "Content-Type": "application/json", "X-Empty": ""},
        )
        assert response.status == 201
        assert response.headers["x-multi"] == "one, two, three"
        assert response.headers["x-mixed-case"] == "Value"
        assert all(name == name.lower() for name in response.headers)
        assert await response.read() == b"done"
        response.release()

        response = await session.get(peer.url + "/v1/models", headers={"Accept": "application/json"})
        assert await response.read() == b"done"
        response.release()

        post, get = peer.requests
        assert post.method == "POST"
        assert post.version == "HTTP/1.1"
        assert post.target == "/v1/chat/completions?api-version=2024-01&x=a%20b"
        assert post.headers["host"] == f"127.0.0.1:{peer.port}"
        assert post.headers["content-length"] == str(len(body))
        assert post.headers["authorization"] == "Bearer k-123"
        assert post.headers["content-type"] == "application/json"
        assert post.headers["x-empty"] == ""
        assert post.body == body
        assert sum(line.lower().startswith("host:") for line in post.header_lines) == 1

        assert get.method == "GET"
        assert get.target == "/v1/models"
        assert get.headers["host"] == f"127.0.0.1:{peer.port}"
        assert get.headers["accept"] == "application/json"
        assert "content-length" not in get.headers
        assert get.body == b""
        assert peer.accepted == 1


async def test_the_request_an_aiohttp_server_sees() -> None:
    seen: list[tuple[str, str, str, str | None, bytes, str | None]] = []

    async def handler(request: web.Request) -> web.Response:
        headers = request.headers
        seen.append(
            (request.method, request.path_qs, headers["Host"], headers.get("X-Key"), await request.read(), headers.get("Content-Length"))
        )
        return web.Response(text="fine", headers={"X-Id": "7"})

    app = web.Application()
    app.router.add_route("*", "/echo", handler)
    runner, base = await web_peer(app)
    port = base.rsplit(":", 1)[1]
    session = Session(4)
    try:
        response = await session.request("PUT", base + "/echo?q=1", data=b"payload", headers={"X-Key": "v"})
        assert response.status == 200
        assert response.headers["x-id"] == "7"
        assert await response.read() == b"fine"
        response.release()
        assert seen == [("PUT", "/echo?q=1", f"127.0.0.1:{port}", "v", b"payload", "7")]
    finally:
        await session.close()
        await runner.cleanup()


# -- 9. backpressure


async def test_an_unread_stream_stays_bounded_in_the_client_and_arrives_intact(session: Session) -> None:
    payload = bytes(range(256)) * (8 * 1024)  # 2 MiB
    sent = asyncio.Event()

    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload))
        for offset in range(0, len(payload), 64 * 1024):
            writer.write(payload[offset : offset + 64 * 1024])
            await writer.drain()
        sent.set()
        await reader.read()

    async with Peer(handler) as peer:
        response = await session.get(peer.url + "/big", timeout=Timeout(read=1.0))
        await asyncio.sleep(0.2)  # the reader reads nothing for a while
        buffered = response._buffered
        assert 0 < buffered <= HIGH_WATER + 512 * 1024
        conn = response._conn
        assert conn is not None and conn._paused  # the socket is no longer read
        body = await asyncio.wait_for(response.read(), 2.0)
        assert len(body) == len(payload)
        assert body == payload
        assert sent.is_set()
        response.release()
        assert session.open_connections == 1


async def test_a_slow_iter_any_reader_stays_bounded_and_gets_every_byte(session: Session) -> None:
    payload = bytes(range(251)) * 8192  # ~2 MB, a length that does not divide evenly

    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for offset in range(0, len(payload), 100_000):
            part = payload[offset : offset + 100_000]
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with Peer(handler) as peer:
        response = await session.get(peer.url + "/big")
        got: list[bytes] = []
        most = 0
        async for chunk in response.iter_any():
            got.append(chunk)
            most = max(most, len(chunk))
            if len(got) < 4:
                await asyncio.sleep(0.05)  # a slow reader at first
        assert b"".join(got) == payload
        assert most <= HIGH_WATER + 512 * 1024
        response.release()
        assert session.open_connections == 1


# -- 10. cancellation


async def test_cancelling_a_read_mid_body_closes_that_connection(session: Session) -> None:
    async with Peer(stalls_on("/stall", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")) as peer:
        response = await session.get(peer.url + "/stall")
        assert session.open_connections == 1
        reading = asyncio.create_task(response.read())
        await asyncio.sleep(0.05)
        assert not reading.done()
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        assert session.open_connections == 0
        await eventually(lambda: peer.open == 0)  # the peer saw the close
        with pytest.raises(WireError):
            await response.read()  # the answer is over, cut short

        later = await session.get(peer.url + "/fine", timeout=Timeout(total=1.0))
        assert await later.read() == b"ok"
        later.release()
        assert peer.accepted == 2
        assert session.open_connections == 1


async def test_cancelling_a_request_awaiting_its_head_closes_that_connection(session: Session) -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        await reader.read()

    async with Peer(handler) as peer:
        asking = asyncio.create_task(session.get(peer.url + "/silent"))
        await eventually(lambda: len(peer.requests) == 1)
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
        assert session.open_connections == 0
        await eventually(lambda: peer.open == 0)


# -- 11. release


async def test_release_after_a_full_read_keeps_the_connection(session: Session) -> None:
    async with Peer(keep_alive) as peer:
        response = await session.get(peer.url + "/a")
        assert await response.read() == b"ok"
        response.release()
        response.release()  # twice is harmless
        assert session.open_connections == 1
        await asyncio.sleep(0.02)
        assert session.open_connections == 1
        assert peer.open == 1
        second = await session.get(peer.url + "/b")
        assert await second.read() == b"ok"
        second.release()
        assert peer.accepted == 1


async def test_release_before_the_body_ended_closes_the_connection(session: Session) -> None:
    async with Peer(stalls_on("/long", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nstart")) as peer:
        response = await session.get(peer.url + "/long")
        assert response.status == 200
        response.release()
        assert session.open_connections == 0
        await eventually(lambda: peer.open == 0)
        later = await session.get(peer.url + "/ok")
        assert await later.read() == b"ok"
        later.release()
        assert peer.accepted == 2


async def test_release_of_an_answer_whose_body_arrived_but_was_not_read_keeps_the_connection(session: Session) -> None:
    async with Peer(keep_alive) as peer:
        response = await session.get(peer.url + "/a")
        await asyncio.sleep(0.02)  # the two body bytes are in, unread
        response.release()
        assert session.open_connections == 1
        second = await session.get(peer.url + "/b")
        assert await second.read() == b"ok"
        second.release()
        assert peer.accepted == 1


# -- 12. closing the session


async def test_closing_the_session_closes_its_connections_and_refuses_requests() -> None:
    async with Peer(keep_alive) as peer:
        session = Session(4)
        responses = []
        for path in ("/a", "/b"):
            responses.append(await session.get(peer.url + path))
        assert session.open_connections == 2
        assert await responses[0].read() == b"ok"
        responses[0].release()  # one idle, one still holding its answer
        await session.close()
        assert session.open_connections == 0
        await eventually(lambda: peer.open == 0)
        responses[1].release()
        with pytest.raises(RuntimeError):
            await session.get(peer.url + "/c")
        with pytest.raises(RuntimeError):
            await session.post(peer.url + "/c", data=b"x")
        assert peer.accepted == 2


async def test_closing_the_session_mid_body_cuts_the_reader_short() -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nstart")
        await writer.drain()
        await reader.read()

    async with Peer(handler) as peer:
        session = Session(4)
        response = await session.get(peer.url + "/long")
        reading = asyncio.create_task(response.read())
        await asyncio.sleep(0.02)
        await session.close()
        with pytest.raises(Disconnected) as caught:
            await asyncio.wait_for(reading, 1.0)
        assert caught.value.answered is True
        assert session.open_connections == 0


async def test_a_connection_that_carried_a_large_answer_serves_the_next_request(session: Session) -> None:
    # read() keeps every byte until the end, so the last arrival of an answer over HIGH_WATER
    # pauses the socket: the connection must not go back to the pool still paused
    payload = b"z" * (HIGH_WATER * 2)

    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await peer.next_request(reader)) is not None:
            if request.target == "/big":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload))
            else:
                writer.write(OK)
            await writer.drain()

    async with Peer(handler) as peer:
        response = await session.get(peer.url + "/big")
        assert await asyncio.wait_for(response.read(), 1.0) == payload
        response.release()
        assert session.open_connections == 1
        try:
            second = await asyncio.wait_for(session.get(peer.url + "/small", timeout=Timeout(read=0.3)), 1.0)
            body = await asyncio.wait_for(second.read(), 0.5)
        except asyncio.TimeoutError:
            pytest.fail("the request on the pooled connection hung (its socket was left paused)")
        assert body == b"ok"
        second.release()
        assert peer.accepted == 1


async def test_a_read_timeout_does_not_count_the_time_a_slow_reader_keeps_the_socket_paused(session: Session) -> None:
    payload = bytes(range(256)) * (4 * 1024)  # 1 MiB

    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload))
        await writer.drain()
        await reader.read()

    async with Peer(handler) as peer:
        response = await session.get(peer.url + "/big", timeout=Timeout(read=0.1))
        await asyncio.sleep(0.35)  # the reader's gap, three read timeouts long
        assert await asyncio.wait_for(response.read(), 1.0) == payload
        response.release()


async def test_requests_waiting_for_a_connection_when_the_session_closes_fail_cleanly() -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.next_request(reader)
        await reader.read()  # holds the session's only connection

    async with Peer(handler) as peer:
        session = Session(1)
        holding = asyncio.create_task(session.get(peer.url + "/hold"))
        await eventually(lambda: len(peer.requests) == 1)
        waiting = [asyncio.create_task(session.get(peer.url + f"/wait{i}")) for i in range(2)]
        await asyncio.sleep(0.02)
        assert not any(task.done() for task in waiting)
        await session.close()
        outcomes = await asyncio.gather(holding, *waiting, return_exceptions=True)
        await asyncio.sleep(0.02)
        assert isinstance(outcomes[0], Disconnected)
        # the callers' tasks were not cancelled: each must see an error, not a CancelledError
        for outcome in outcomes[1:]:
            assert isinstance(outcome, (RuntimeError, WireError)), repr(outcome)
        assert peer.accepted == 1, "a connection was opened after the session closed"


async def test_the_pool_bound_closes_another_origins_idle_connection_to_make_room() -> None:
    async with Peer(keep_alive) as first, Peer(keep_alive) as second:
        session = Session(1)
        try:
            for peer in (first, second, first):
                response = await asyncio.wait_for(session.get(peer.url + "/x"), 1.0)
                assert await response.read() == b"ok"
                response.release()
                assert session.open_connections == 1
            assert (first.accepted, second.accepted) == (2, 1)
            await eventually(lambda: second.open == 0)
        finally:
            await session.close()


async def test_an_idle_connection_past_keepalive_s_is_not_reused() -> None:
    async with Peer(keep_alive) as peer:
        session = Session(4, keepalive_s=0.05)
        try:
            for _ in range(2):
                response = await session.get(peer.url + "/x")
                assert await response.read() == b"ok"
                response.release()
                await asyncio.sleep(0.1)
            assert peer.accepted == 2
            await eventually(lambda: peer.open <= 1)  # the stale one was closed
        finally:
            await session.close()


async def test_an_interim_100_continue_is_skipped(session: Session) -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await peer.next_request(reader) is not None:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK)
            await writer.drain()

    async with Peer(handler) as peer:
        for _ in range(2):
            response = await asyncio.wait_for(session.post(peer.url + "/x", data=b"{}"), 1.0)
            assert response.status == 200
            assert "link" not in response.headers
            assert await asyncio.wait_for(response.read(), 1.0) == b"ok"
            response.release()
        assert peer.accepted == 1


async def test_a_connect_that_gets_no_answer_is_a_connect_timeout() -> None:
    # a listener that never accepts, its backlog already full: further SYNs go unanswered
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    session = Session(4)
    try:
        started = time.monotonic()
        with pytest.raises(ConnectTimeout) as caught:
            await session.get(f"http://127.0.0.1:{port}/x", timeout=Timeout(connect=0.2))
        assert isinstance(caught.value, ConnectError)
        assert isinstance(caught.value, TimeoutError)
        assert time.monotonic() - started < 0.8
        assert session.open_connections == 0
    finally:
        await session.close()
        for filler in fillers:
            filler.close()
        listener.close()


async def test_a_url_with_credentials_is_refused_not_sent_without_them(session: Session) -> None:
    with pytest.raises(ValueError, match="credentials"):
        await session.post("http://user:secret@127.0.0.1:9/v1/chat/completions", data=b"{}")
    assert session.open_connections == 0
