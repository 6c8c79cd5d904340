"""A recording OpenAI-compatible peer for isolation tests: every request it receives is recorded
(method, path, headers) before it is answered — a route it does not know included — so a test can
assert that a request never reached it. It stores Responses API objects, answers chat completions,
and any other route with a JSON echo of the path. Every answer carries account headers of the
operator (``openai-organization``, ``openai-project``, ``x-ratelimit-*``)."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

ACCOUNT_HEADERS = {
    "openai-organization": "org-operator-secret",
    "openai-project": "proj_operator_secret",
    "x-ratelimit-remaining-requests": "4242",
    "x-ratelimit-limit-requests": "5000",
    "x-request-id": "req-upstream-1",
}


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class RecordingUpstream:
    """``with RecordingUpstream("a") as up:`` — ``up.base_url`` ends in ``/v1``; ``up.calls`` every
    request but the health probes (``GET /v1/models``); ``up.status`` forces an answer status."""

    _ids = itertools.count(1)

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[Call] = []
        self.responses: dict[str, dict[str, Any]] = {}
        self.status: int | None = None  # e.g. 503: every non-probe answer fails
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def paths(self) -> list[str]:
        return [c.path for c in self.calls]

    def reset(self) -> None:
        self.calls.clear()
        self.status = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if request.method == "GET" and path == "/v1/models":
            return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.calls.append(Call(request.method, path, dict(request.headers), body))
        if self.status is not None:
            error = {"message": f"{self.name} is failing", "type": "server_error", "param": None, "code": None}
            return web.json_response({"error": error}, status=self.status, headers=ACCOUNT_HEADERS)
        if path == "/v1/chat/completions" and isinstance(body, dict):
            return self._chat(body)
        if path == "/v1/responses" and request.method == "POST" and isinstance(body, dict):
            return await self._create_response(request, body)
        if path.startswith("/v1/responses/"):
            return self._by_id(request.method, path[len("/v1/responses/") :])
        return web.json_response({"object": "echo", "upstream": self.name, "path": path}, headers=ACCOUNT_HEADERS)

    def _chat(self, body: dict[str, Any]) -> web.Response:
        text = f"{self.name} answered"
        completion = {
            "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()), "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
        return web.json_response(completion, headers=ACCOUNT_HEADERS)

    def _response(self, rid: str, body: dict[str, Any]) -> dict[str, Any]:
        text = f"{self.name} says: {json.dumps(body.get('input'))}"
        message = {"id": "msg_" + rid, "type": "message", "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": text, "annotations": []}]}
        return {"id": rid, "object": "response", "created_at": int(time.time()), "status": "completed", "model": body.get("model"),
                "output": [message], "previous_response_id": body.get("previous_response_id"),
                "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}}

    async def _create_response(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        rid = f"resp_{self.name}_{next(self._ids)}"
        stored = self.responses[rid] = self._response(rid, body)
        if not body.get("stream"):
            return web.json_response(stored, headers=ACCOUNT_HEADERS)
        response = web.StreamResponse(headers={"content-type": "text/event-stream", **ACCOUNT_HEADERS})
        await response.prepare(request)
        for event in ({"type": "response.created", "response": {**stored, "status": "in_progress", "output": []}},
                      {"type": "response.completed", "response": stored}):
            await response.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        await response.write_eof()
        return response

    def _by_id(self, method: str, rest: str) -> web.Response:
        rid, _, suffix = rest.partition("/")
        stored = self.responses.get(rid)
        if stored is None:
            error = {"message": f"No response found with id '{rid}'.", "type": "invalid_request_error", "param": None, "code": None}
            return web.json_response({"error": error}, status=404, headers=ACCOUNT_HEADERS)
        if method == "DELETE":
            del self.responses[rid]
            return web.json_response({"id": rid, "object": "response", "deleted": True}, headers=ACCOUNT_HEADERS)
        if suffix == "cancel":
            stored["status"] = "cancelled"
        if suffix == "input_items":
            return web.json_response({"object": "list", "data": [], "has_more": False}, headers=ACCOUNT_HEADERS)
        return web.json_response(stored, headers=ACCOUNT_HEADERS)

    def start(self) -> RecordingUpstream:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = runner.addresses[0][1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"recording-{self.name}", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> RecordingUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
