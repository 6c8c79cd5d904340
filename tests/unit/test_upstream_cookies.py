"""The upstream sessions keep no cookies: a target's ``set-cookie`` (a CDN's bot cookie, a session
id) must not be replayed on the next call, which may come from another tenant."""

from __future__ import annotations

from aiohttp import web

from gateway.config.models import TargetConfig
from gateway.upstream.http import new_session
from gateway.upstream.pool import EndpointPool
from gateway.upstream.target import TargetClient


async def test_a_cookie_a_target_sets_is_not_sent_back_on_the_next_call() -> None:
    seen: list[str | None] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append(request.headers.get("cookie"))
        response = web.json_response({"object": "chat.completion", "choices": []})
        response.set_cookie("__cf_bm", "tenant-a-session", path="/")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "localhost", 0)  # a host name: cookie jars ignore cookies from IP addresses
    await site.start()
    port = runner.addresses[0][1]
    session = new_session(4)
    try:
        base = f"http://localhost:{port}/v1"
        client = TargetClient(TargetConfig(name="gpt", endpoints=[base]), EndpointPool.of("gpt", [base]), session)
        for _ in range(2):
            reply = await client.send(b'{"model": "gpt", "messages": []}', stream=False)
            assert reply.status == 200
            assert "set-cookie" not in reply.headers  # never relayed to the client either
    finally:
        await session.close()
        await runner.cleanup()
    assert seen == [None, None]
