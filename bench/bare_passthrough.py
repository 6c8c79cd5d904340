"""The floor for a Python gateway: Litestar + one shared aiohttp session, no refinement, no checks.

    UPSTREAM=http://127.0.0.1:9100/v1 uvicorn bench.bare_passthrough:app --loop uvloop --http httptools
"""

import os

import aiohttp
import msgspec
from litestar import Litestar, Request, post
from litestar.response import Response, Stream

UPSTREAM = os.environ.get("UPSTREAM", "http://127.0.0.1:9100/v1") + "/chat/completions"
state: dict[str, aiohttp.ClientSession] = {}


async def startup() -> None:
    connector = aiohttp.TCPConnector(limit=2048, keepalive_timeout=60)
    state["s"] = aiohttp.ClientSession(connector=connector, auto_decompress=False)


async def shutdown() -> None:
    await state["s"].close()


@post("/v1/chat/completions")
async def chat(request: Request) -> Response | Stream:
    raw = await request.body()
    stream = bool(msgspec.json.decode(raw).get("stream"))  # a gateway must at least read the body
    resp = await state["s"].post(UPSTREAM, data=raw, headers={"content-type": "application/json"})
    if not stream:
        async with resp:
            return Response(await resp.read(), status_code=resp.status, media_type="application/json")

    async def relay():
        async with resp:
            async for chunk in resp.content.iter_any():
                yield chunk

    return Stream(relay(), status_code=resp.status, media_type="text/event-stream")


app = Litestar([chat], on_startup=[startup], on_shutdown=[shutdown], openapi_config=None)
