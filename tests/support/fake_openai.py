"""A fake OpenAI-compatible server (a vLLM worker or a target LLM) for tests: a peer, on loopback.

Runs aiohttp.web in its own thread and event loop. Each request's behaviour is chosen by the
request's ``model`` through :meth:`FakeOpenAI.behave`; every request is recorded, and handlers
cancelled by a client disconnect are counted (``cancelled``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Reply = Callable[[str, dict[str, Any]], str]


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "\n\n".join(p.get("text", "") for p in content or [] if p.get("type") == "text")
    return ""


def echo_reply(model: str, body: dict[str, Any]) -> str:
    return f"echo: {_last_user_text(body)}"


@dataclass
class Behaviour:
    """How to answer. ``mode``: ok, status, malformed, reset, wrong_type, cut_stream, no_done, hang."""

    mode: str = "ok"
    reply: Reply = echo_reply
    delay_s: float = 0.0
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: int = 5
    chunk_delay_s: float = 0.005  # pause between streamed chunks
    force_usage: bool = False  # send the usage chunk even when not asked (vLLM --enable-force-include-usage)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    raw: bytes = b""  # the request body as received


class FakeOpenAI:
    """Start with ``with FakeOpenAI() as fake:``; ``fake.base_url`` ends in ``/v1``."""

    def __init__(self, default: Behaviour | None = None) -> None:
        self.default = default or Behaviour()
        self.behaviours: dict[str, Behaviour] = {}
        self.requests: list[Recorded] = []
        self.cancelled: list[str] = []
        self.in_flight = 0
        self.down = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._lock = threading.Lock()

    # -- control ----------------------------------------------------------------------------
    def behave(self, model: str, behaviour: Behaviour) -> None:
        self.behaviours[model] = behaviour

    def reset(self) -> None:
        self.behaviours.clear()
        self.requests.clear()
        self.cancelled.clear()
        self.down = False

    def requests_for(self, model: str) -> list[Recorded]:
        return [r for r in self.requests if r.body.get("model") == model]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- handlers -------------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        if self.down:
            return web.json_response({"error": "down"}, status=503)
        names = sorted({*self.behaviours, "target-model"})
        return web.json_response({"object": "list", "data": [{"id": n, "object": "model"} for n in names]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"error": {"message": "bad json"}}, status=400)
        model = str(body.get("model"))
        with self._lock:
            self.requests.append(Recorded(request.path, dict(request.headers), body, time.monotonic(), raw))
        behaviour = self.behaviours.get(model, self.default)
        self.in_flight += 1
        try:
            if behaviour.delay_s:
                await asyncio.sleep(behaviour.delay_s)
            return await self._answer(request, body, model, behaviour)
        except asyncio.CancelledError:
            with self._lock:
                self.cancelled.append(model)
            raise
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, body: dict[str, Any], model: str, b: Behaviour) -> web.StreamResponse:
        if b.mode == "hang":
            await asyncio.sleep(3600)
        if b.mode == "reset":
            assert request.transport is not None
            request.transport.abort()
            await asyncio.sleep(0.05)
            return web.Response(status=500)
        if b.mode == "status":
            payload = b.body if b.body is not None else {"error": {"message": f"fake {b.status}", "type": "fake", "param": None, "code": None}}
            return web.json_response(payload, status=b.status, headers=b.headers)
        if b.mode == "malformed":
            return web.Response(body=b'{"choices": [', content_type="application/json")
        if b.mode == "wrong_type":
            return web.Response(text="<html>proxy error page</html>", content_type="text/html")
        text = b.reply(model, body)
        created = int(time.time())
        base = {"id": "chatcmpl-fake", "created": created, "model": model}
        usage = {"prompt_tokens": 7, "completion_tokens": len(text.split()), "total_tokens": 7 + len(text.split())}
        if body.get("stream"):
            response = web.StreamResponse(headers={"content-type": "text/event-stream", **b.headers})
            await response.prepare(request)
            words = text.split(" ")
            per = max(1, len(words) // max(1, b.chunks))
            pieces = [" ".join(words[i : i + per]) + (" " if i + per < len(words) else "") for i in range(0, len(words), per)]
            for i, piece in enumerate(pieces):
                delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                chunk = {**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                if b.mode == "cut_stream" and i >= len(pieces) // 2:
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                await asyncio.sleep(b.chunk_delay_s)
            final = {**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            await response.write(b"data: " + json.dumps(final).encode() + b"\n\n")
            if b.mode == "no_done":  # a clean end of the body, but without the [DONE] sentinel
                await response.write_eof()
                return response
            if (body.get("stream_options") or {}).get("include_usage") or b.force_usage:
                await response.write(b"data: " + json.dumps({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}).encode() + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            return response
        completion = {
            **base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}],
            "usage": usage,
        }
        return web.json_response(completion, headers=b.headers)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, port: int = 0) -> FakeOpenAI:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_get("/v1/models", self._models)
            app.router.add_post("/v1/chat/completions", self._chat)
            runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", port)
            loop.run_until_complete(site.start())
            self._runner = runner
            self.port = runner.addresses[0][1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
