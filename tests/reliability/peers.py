"""Fault-injecting peers for the reliability suite, built on :class:`tests.support.fake_openai.FakeOpenAI`.

``FaultyPeer`` adds *peer-wide* faults: unlike ``FakeOpenAI.behave`` (per model, chat route only),
a fault set here hits every route, ``/v1/models`` (the gateway's health probe) included, the way a
broken real server would. It also controls the listening port:

* ``close_port()`` / ``open_port()``: nothing listens on the port (``ECONNREFUSED``), existing
  keep-alive connections are cut — the peer is *down*; ``open_port`` brings it back on the same port.
* ``refuse()`` / ``open_port()``: a listener that accepts each TCP connection and resets it at once
  (``SO_LINGER 0`` → RST) before any HTTP byte — a peer *refusing connections* at its front door.

Faults (``peer.fault = ...``; ``None`` = healthy): ``slow`` (sleep ``slow_s`` first), ``500``,
``429`` (with ``retry-after``), ``malformed`` (truncated JSON, 200), ``reset`` (connection aborted
after the request was read), ``cut`` (half the body / two SSE chunks, then the connection is
aborted), ``wrong_type`` (a 200 ``text/html`` proxy error page).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

from aiohttp import web

from tests.support.fake_openai import Behaviour, FakeOpenAI, Reply

FAULTS = ("down", "refuse", "slow", "500", "429", "malformed", "reset", "cut", "wrong_type")


class _Resetter(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()  # type: ignore[attr-defined]


class FaultyPeer(FakeOpenAI):
    """A FakeOpenAI whose faults apply to the whole peer; see the module docstring."""

    def __init__(self, reply: Reply | None = None, slow_s: float = 2.0, stream_gap_s: float = 0.005) -> None:
        super().__init__(Behaviour(reply=reply) if reply is not None else None)
        self.fault: str | None = None
        self.slow_s = slow_s
        self.stream_gap_s = stream_gap_s  # used by the "slow_stream" fault (graceful shutdown test)
        self.fault_hits = 0
        self._refuser: asyncio.base_events.Server | None = None

    # -- port control (runs on the peer's own loop) ----------------------------------------------
    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _close_port(self) -> None:
        assert self._runner is not None
        for site in list(self._runner.sites):
            await site.stop()
        if self._refuser is not None:
            self._refuser.close()
            self._refuser = None
        server = self._runner.server
        if server is not None:
            for transport in list(getattr(server, "_connections", {}).values()):
                transport.abort()

    async def _open_port(self) -> None:
        await self._close_port()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)  # type: ignore[arg-type]
        await site.start()

    async def _refuse(self) -> None:
        await self._close_port()
        loop = asyncio.get_running_loop()
        self._refuser = await loop.create_server(_Resetter, "127.0.0.1", self.port, reuse_address=True)

    def close_port(self) -> None:
        self._call(self._close_port())

    def open_port(self) -> None:
        self._call(self._open_port())

    def refuse(self) -> None:
        self._call(self._refuse())

    def inject(self, fault: str) -> None:
        """Start ``fault`` (one of :data:`FAULTS`)."""
        assert fault in FAULTS, fault
        if fault == "down":
            self.close_port()
        elif fault == "refuse":
            self.refuse()
        else:
            self.fault = fault

    def clear(self) -> None:
        """Back to healthy, on the same port."""
        self.fault = None
        if self._refuser is not None or not (self._runner and self._runner.sites):
            self.open_port()

    # -- handlers ----------------------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        fault = self.fault
        if fault is None or fault == "slow_stream":
            return await super()._models(request)
        self.fault_hits += 1
        if fault == "slow":
            await asyncio.sleep(self.slow_s)
            return await super()._models(request)
        return await self._fault_answer(request, fault, {"object": "list", "data": [{"id": "target-model"}]}, stream=False)  # type: ignore[return-value]

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        fault = self.fault
        if fault is None:
            return await super()._chat(request)
        self.in_flight += 1
        try:
            self.fault_hits += 1
            raw = await request.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            if fault == "slow":
                await asyncio.sleep(self.slow_s)
                return await super()._chat(request)
            if fault == "slow_stream":
                return await self._slow_stream(request, body)
            completion = {
                "id": "chatcmpl-fault",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "a complete answer"}, "finish_reason": "stop"}],
            }
            return await self._fault_answer(request, fault, completion, stream=bool(body.get("stream")))
        except asyncio.CancelledError:
            self.cancelled.append(f"fault:{fault}")
            raise
        finally:
            self.in_flight -= 1

    async def _fault_answer(self, request: web.Request, fault: str, good: dict[str, Any], *, stream: bool) -> web.StreamResponse:
        if fault in ("500", "429"):
            status = int(fault)
            error = {"error": {"message": f"fault {status}", "type": "fault", "param": None, "code": None}}
            headers = {"retry-after": "2"} if status == 429 else {}
            return web.json_response(error, status=status, headers=headers)
        if fault == "malformed":
            return web.Response(body=json.dumps(good).encode()[:25], content_type="application/json")
        if fault == "wrong_type":
            return web.Response(text="<html><body>502 proxy error</body></html>", content_type="text/html")
        if fault == "reset":
            assert request.transport is not None
            request.transport.abort()
            await asyncio.sleep(0.05)
            return web.Response(status=500)
        if fault == "cut":
            if stream:
                response = web.StreamResponse(headers={"content-type": "text/event-stream"})
                await response.prepare(request)
                for word in ("partial ", "answer "):
                    delta = {"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                    await response.write(b"data: " + json.dumps(delta).encode() + b"\n\n")
                    await asyncio.sleep(0.01)
            else:
                data = json.dumps(good).encode()
                response = web.StreamResponse(headers={"content-type": "application/json"})
                response.content_length = len(data)
                await response.prepare(request)
                await response.write(data[: len(data) // 2])
            await asyncio.sleep(0.01)
            assert request.transport is not None
            request.transport.abort()
            return response
        raise AssertionError(f"unknown fault {fault!r}")

    async def _slow_stream(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        """A healthy stream of ``slow_s / stream_gap_s`` chunks, ``stream_gap_s`` apart."""
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        chunks = max(1, int(self.slow_s / self.stream_gap_s))
        for i in range(chunks):
            delta = {"choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]}
            await response.write(b"data: " + json.dumps(delta).encode() + b"\n\n")
            await asyncio.sleep(self.stream_gap_s)
        await response.write(b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n')
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def stage_reply(role: str) -> Reply:
    """Replies a healthy adapter gives for the suite's prompt, accepted by drift control."""
    texts = {
        "cleaner": "what is the capital of france",
        "paraphraser": "What is the capital of France?",
        "describer": "France is a country in Western Europe. Paris is its capital city.",
    }

    def reply(model: str, body: dict[str, Any]) -> str:
        return texts.get(role, "echo")

    return reply


PROMPT = "waht is teh capital of frnace"


def _stop_refuser(peer: FaultyPeer) -> None:
    if peer._refuser is not None and peer._loop is not None:
        try:
            peer._call(peer._close_port())
        except Exception:  # the loop may be gone already
            pass


_base_stop = FaultyPeer.stop


def _stop(self: FaultyPeer) -> None:
    _stop_refuser(self)
    _base_stop(self)


FaultyPeer.stop = _stop  # type: ignore[method-assign]
