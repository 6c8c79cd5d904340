"""A fake OpenAI-compatible server (a vLLM worker or a target LLM) for tests: a peer, on loopback.

Runs aiohttp.web in its own thread and event loop. Each request's behaviour is chosen by the
request's ``model`` through :meth:`FakeOpenAI.behave`; every request is recorded, and handlers
cancelled by a client disconnect are counted (``cancelled``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Reply = Callable[[str, dict[str, Any]], str]


def _last_user_text(body: dict[str, Any]) -> str:
    if "messages" not in body and "input" in body:  # a Responses request
        return _last_input_text(body["input"])
    if "messages" not in body and "prompt" in body:  # a text completion request
        prompt = body["prompt"]
        return prompt if isinstance(prompt, str) else json.dumps(prompt)
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "\n\n".join(p.get("text", "") for p in content or [] if p.get("type") == "text")
    return ""


def _last_input_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    for item in reversed(value or []):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return "\n\n".join(p.get("text", "") for p in content or [] if p.get("type") == "input_text")
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
    body: Any = None  # mode "status": JSON-encoded, or bytes sent as they are
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
        self.responses: dict[str, dict[str, Any]] = {}  # Responses API objects created, by id
        self._response_count = 0
        self.down = False
        self.probes = 0  # GET /v1/models calls (the gateway's health probes)
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
        self.responses.clear()
        self.down = False
        self.probes = 0

    def requests_for(self, model: str) -> list[Recorded]:
        return [r for r in self.requests if r.body.get("model") == model]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- handlers -------------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        self.probes += 1
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
        if b.mode == "status" and isinstance(b.body, bytes):  # raw bytes: content-type from b.headers
            return web.Response(body=b.body, status=b.status, headers=b.headers)
        if b.mode == "status":
            payload = b.body if b.body is not None else {"error": {"message": f"fake {b.status}", "type": "fake", "param": None, "code": None}}
            return web.json_response(payload, status=b.status, headers=b.headers)
        if b.mode == "malformed":
            return web.Response(body=b'{"choices": [', content_type="application/json")
        if b.mode == "wrong_type":
            return web.Response(text="<html>proxy error page</html>", content_type="text/html")
        if request.path.endswith("/responses"):
            return await self._answer_response(request, body, model, b)
        if request.path in self._OTHER:
            return await getattr(self, self._OTHER[request.path])(request, body, model, b)
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

    # -- text completions, embeddings, moderations ------------------------------------------
    _OTHER = {"/v1/completions": "_answer_completion", "/v1/embeddings": "_answer_embeddings", "/v1/moderations": "_answer_moderation"}
    _CATEGORIES = (
        "hate", "hate/threatening", "harassment", "harassment/threatening", "illicit", "illicit/violent", "self-harm",
        "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence", "violence/graphic",
    )  # fmt: skip

    async def _answer_completion(self, request: web.Request, body: dict[str, Any], model: str, b: Behaviour) -> web.StreamResponse:
        """``POST /v1/completions``: a ``text_completion`` object, or its SSE chunks then ``[DONE]``."""
        text = b.reply(model, body)
        base = {"id": "cmpl-fake", "object": "text_completion", "created": int(time.time()), "model": model}
        usage = {"prompt_tokens": 7, "completion_tokens": len(text.split()), "total_tokens": 7 + len(text.split())}
        if not body.get("stream"):
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
            return web.json_response({**base, "choices": [choice], "usage": usage}, headers=b.headers)
        response = web.StreamResponse(headers={"content-type": "text/event-stream", **b.headers})
        await response.prepare(request)
        words = text.split(" ")
        per = max(1, len(words) // max(1, b.chunks))
        pieces = [" ".join(words[i : i + per]) + (" " if i + per < len(words) else "") for i in range(0, len(words), per)]
        for piece in pieces:
            chunk = {**base, "choices": [{"index": 0, "text": piece, "logprobs": None, "finish_reason": None}]}
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await asyncio.sleep(b.chunk_delay_s)
        final = {**base, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]}
        await response.write(b"data: " + json.dumps(final).encode() + b"\n\n")
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(b"data: " + json.dumps({**base, "choices": [], "usage": usage}).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _answer_embeddings(self, request: web.Request, body: dict[str, Any], model: str, b: Behaviour) -> web.Response:
        """``POST /v1/embeddings``: one 3-dimensional vector per input (base64 when asked, as the SDK does)."""
        inputs = body.get("input")
        count = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
        vector = [0.25, -0.5, 1.0]
        encoded: Any = vector
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack("<3f", *vector)).decode()
        data = [{"object": "embedding", "index": i, "embedding": encoded} for i in range(count)]
        usage = {"prompt_tokens": 3 * count, "total_tokens": 3 * count}
        return web.json_response({"object": "list", "data": data, "model": model, "usage": usage}, headers=b.headers)

    async def _answer_moderation(self, request: web.Request, body: dict[str, Any], model: str, b: Behaviour) -> web.Response:
        """``POST /v1/moderations``: nothing flagged, one result per input."""
        inputs = body.get("input")
        count = len(inputs) if isinstance(inputs, list) else 1
        result = {
            "flagged": False,
            "categories": {c: False for c in self._CATEGORIES},
            "category_scores": {c: 0.001 for c in self._CATEGORIES},
            "category_applied_input_types": {c: ["text"] for c in self._CATEGORIES},
        }
        return web.json_response({"id": "modr-fake", "model": model, "results": [result] * count}, headers=b.headers)

    # -- the Responses API ------------------------------------------------------------------
    def _response(self, body: dict[str, Any], model: str, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        self._response_count += 1
        text = "".join(part["text"] for item in output for part in item.get("content", []))
        words = len(text.split())
        return {
            "id": f"resp_fake{self.port}_{self._response_count}",
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": None,
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": body.get("tools", []),
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": {
                "input_tokens": 7,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": words,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 7 + words,
            },
            "metadata": body.get("metadata") or {},
        }

    async def _answer_response(self, request: web.Request, body: dict[str, Any], model: str, b: Behaviour) -> web.StreamResponse:
        """``POST /v1/responses``: a Response object, or its stream of events (no ``[DONE]``).
        ``cut_stream`` drops the connection midway; ``no_done`` ends without ``response.completed``."""
        text = b.reply(model, body)
        message_id = f"msg_fake{self._response_count + 1}"

        def message(content: str, status: str) -> dict[str, Any]:
            part = {"type": "output_text", "text": content, "annotations": [], "logprobs": []}
            return {"id": message_id, "type": "message", "role": "assistant", "status": status, "content": [part]}

        done = self._response(body, model, "completed", [message(text, "completed")])
        self.responses[done["id"]] = done
        if not body.get("stream"):
            return web.json_response(done, headers=b.headers)
        response = web.StreamResponse(headers={"content-type": "text/event-stream", **b.headers})
        await response.prepare(request)
        seq = 0

        async def emit(event: dict[str, Any]) -> None:
            nonlocal seq
            event = {**event, "sequence_number": seq}
            seq += 1
            await response.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())

        started = {**done, "status": "in_progress", "completed_at": None, "output": []}
        del started["usage"]
        await emit({"type": "response.created", "response": started})
        await emit({"type": "response.in_progress", "response": started})
        where = {"item_id": message_id, "output_index": 0}
        await emit({"type": "response.output_item.added", "output_index": 0, "item": {**message("", "in_progress"), "content": []}})
        await emit({"type": "response.content_part.added", **where, "content_index": 0, "part": message("", "in_progress")["content"][0]})
        words = text.split(" ")
        per = max(1, len(words) // max(1, b.chunks))
        pieces = [" ".join(words[i : i + per]) + (" " if i + per < len(words) else "") for i in range(0, len(words), per)]
        for i, piece in enumerate(pieces):
            await emit({"type": "response.output_text.delta", **where, "content_index": 0, "delta": piece, "logprobs": []})
            if b.mode == "cut_stream" and i >= len(pieces) // 2:
                assert request.transport is not None
                request.transport.abort()
                return response
            await asyncio.sleep(b.chunk_delay_s)
        await emit({"type": "response.output_text.done", **where, "content_index": 0, "text": text, "logprobs": []})
        await emit({"type": "response.content_part.done", **where, "content_index": 0, "part": message(text, "completed")["content"][0]})
        await emit({"type": "response.output_item.done", "output_index": 0, "item": message(text, "completed")})
        if b.mode != "no_done":
            await emit({"type": "response.completed", "response": done})
        await response.write_eof()
        return response

    async def _response_by_id(self, request: web.Request) -> web.Response:
        """GET / DELETE ``/v1/responses/{id}``, POST ``/v1/responses/{id}/cancel``."""
        rid = request.match_info["id"]
        with self._lock:
            self.requests.append(Recorded(request.path, dict(request.headers), {"method": request.method}, time.monotonic()))
        stored = self.responses.get(rid)
        if stored is None:
            error = {"message": f"No response found with id '{rid}'.", "type": "invalid_request_error", "param": None, "code": None}
            return web.json_response({"error": error}, status=404)
        if request.method == "DELETE":
            del self.responses[rid]
            return web.json_response({"id": rid, "object": "response", "deleted": True})
        if request.path.endswith("/cancel"):
            stored["status"] = "cancelled"
        return web.json_response(stored)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, port: int = 0) -> FakeOpenAI:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_get("/v1/models", self._models)
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_post("/v1/responses", self._chat)
            for path in self._OTHER:
                app.router.add_post(path, self._chat)
            app.router.add_post("/v1/relay/chat", self._chat)  # any other route: answered as a chat completion
            app.router.add_get("/v1/responses/{id}", self._response_by_id)
            app.router.add_delete("/v1/responses/{id}", self._response_by_id)
            app.router.add_post("/v1/responses/{id}/cancel", self._response_by_id)
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
