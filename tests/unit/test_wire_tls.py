"""The wire client over TLS: an ``https`` target answers through a verified connection, and a
certificate the client does not trust is refused before anything is sent."""

from __future__ import annotations

import ssl

import pytest
import trustme
from aiohttp import web

from gateway.upstream.wire import ConnectError, Session, Timeout


async def _tls_peer(ca: trustme.CA) -> tuple[web.AppRunner, int, list[str]]:
    seen: list[str] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append(await request.text())
        return web.json_response({"object": "chat.completion"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ctx)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    return runner, runner.addresses[0][1], seen


async def test_an_https_target_answers_over_a_verified_connection() -> None:
    ca = trustme.CA()
    runner, port, seen = await _tls_peer(ca)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    session = Session(4, tls=client_ctx)
    try:
        for _ in range(2):
            response = await session.post(f"https://localhost:{port}/v1/chat/completions", data=b"{}", timeout=Timeout(connect=2, read=2))
            assert response.status == 200
            assert await response.read() == b'{"object": "chat.completion"}'
            response.release()
        assert session.open_connections == 1  # kept alive over TLS too
    finally:
        await session.close()
        await runner.cleanup()
    assert seen == ["{}", "{}"]


async def test_a_certificate_the_client_does_not_trust_is_refused() -> None:
    ca = trustme.CA()
    runner, port, seen = await _tls_peer(ca)
    session = Session(4)  # the system's trust store: it has never heard of this CA
    try:
        with pytest.raises(ConnectError, match="certificate"):
            await session.post(f"https://localhost:{port}/v1/chat/completions", data=b"{}", timeout=Timeout(connect=2, read=2))
    finally:
        await session.close()
        await runner.cleanup()
    assert seen == []
