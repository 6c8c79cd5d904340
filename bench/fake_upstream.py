"""A fast fake OpenAI-compatible upstream for benchmarks (raw asyncio + uvloop + httptools).

It answers ``POST /v1/chat/completions`` with a fixed chat completion, or with ~20 SSE chunks and
``[DONE]`` when ``"stream": true``; ``POST /v1/responses`` with a fixed Response (not streamed);
``GET /v1/models`` and ``GET /health`` answer too. Behaviour is
chosen by the request's ``model`` name so a gateway config alone can drive it:

* ``<anything>-d<ms>``   -- answer after ``ms`` milliseconds (e.g. ``cleaner-d50``).
* ``<anything>-hold<s>`` -- streaming: send the first chunk, hold the stream open ``s`` seconds,
  then send the rest (used to keep 1,000 streams open through a proxy).
* a model starting with ``cleaner``/``paraphraser`` answers, as a vLLM LoRA worker would, with a
  small rewrite of the request's last user message that a drift check accepts (cleaner:
  capitalised with a full stop; paraphraser: "Please ..."); ``describer`` answers one fact.

Everything else gets pre-encoded bytes, so a request costs a few tens of microseconds.
``--workers N`` forks N processes sharing the port with SO_REUSEPORT.

    python bench/fake_upstream.py --port 9100 [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import time
from collections import deque

import httptools
import msgspec

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in the project venv
    uvloop = None

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()
_MODEL_RE = re.compile(rb'"model"\s*:\s*"([^"]*)"')
_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')
_DELAY_RE = re.compile(r"-d(\d+)(?:$|-)")
_HOLD_RE = re.compile(r"-hold(\d+(?:\.\d+)?)(?:$|-)")
CREATED = int(time.time())
N_CHUNKS = 20
ANSWER = "This is a fixed answer from the fake upstream, long enough to look like a short reply."
DESCRIPTION = "The request is about a common programming topic."


def _http(status: str, body: bytes, ctype: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: " + ctype
        + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\nconnection: keep-alive\r\n\r\n" + body
    )


RESPONSE = _json.encode({
    "id": "resp_bench", "object": "response", "created_at": CREATED, "status": "completed", "model": "bench-model",
    "output": [{"type": "message", "id": "msg_bench", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": ANSWER, "annotations": []}]}],
    "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "error": None, "incomplete_details": None,
    "instructions": None, "metadata": {}, "temperature": 1.0, "top_p": 1.0,
    "usage": {"input_tokens": 12, "output_tokens": 20, "total_tokens": 32,
              "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
})


def _completion(model: str, content: str) -> bytes:
    return _json.encode({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32},
    })


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse_parts(model: str, usage: bool) -> tuple[bytes, bytes]:
    """(head incl. first event, rest incl. [DONE] and the terminating chunk)."""
    words = ANSWER.split()
    events = []
    for i in range(N_CHUNKS):
        delta: dict = {"content": (words[i % len(words)] + " ")}
        if i == 0:
            delta["role"] = "assistant"
        events.append({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if i == N_CHUNKS - 1 else None}],
        })
    if usage:
        events.append({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED,
                       "model": model, "choices": [],
                       "usage": {"prompt_tokens": 12, "completion_tokens": N_CHUNKS, "total_tokens": 32}})
    enc = [_chunk(b"data: " + _json.encode(e) + b"\n\n") for e in events]
    head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n") + enc[0]
    rest = b"".join(enc[1:]) + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    return head, rest


_cache: dict[tuple, object] = {}


def _plan(model: str, stream: bool, usage: bool):
    key = (model, stream, usage)
    plan = _cache.get(key)
    if plan is None:
        m = _DELAY_RE.search(model)
        delay = int(m.group(1)) / 1000 if m else 0.0
        h = _HOLD_RE.search(model)
        hold = float(h.group(1)) if h else 0.0
        role = next((r for r in ("cleaner", "describer", "paraphraser") if model.startswith(r)), None)
        if stream:
            body = _sse_parts(model, usage)
        elif role is None:
            body = _http("200 OK", _completion(model, ANSWER))
        else:
            body = None  # computed per request from the prompt
        plan = (delay, hold, role, body)
        _cache[key] = plan
    return plan


def _last_user_text(req: dict) -> str:
    for msg in reversed(req.get("messages") or []):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _adapter_reply(role: str, prompt: str) -> str:
    """What a LoRA worker would answer: small rewrites within the drift bounds, or one fact."""
    prompt = prompt.strip()
    if role == "describer":
        return DESCRIPTION
    if role == "cleaner":  # capitalised, with a full stop: a changed text with tiny drift
        text = prompt[:1].upper() + prompt[1:]
        return text if text.endswith((".", "?", "!")) else text + "."
    return "Please " + prompt[:1].lower() + prompt[1:]  # paraphraser


MODELS = _http("200 OK", _json.encode({"object": "list", "data": [
    {"id": "bench-model", "object": "model", "created": CREATED, "owned_by": "bench"}]}))
HEALTH = _http("200 OK", b"{}")
NOT_FOUND = _http("404 Not Found", b'{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}}')
BAD = _http("400 Bad Request", b'{"error":{"message":"bad json","type":"invalid_request_error","param":null,"code":null}}')
RESPONSES = _http("200 OK", RESPONSE)


class Conn(asyncio.Protocol):
    __slots__ = ("t", "parser", "url", "body", "queue", "busy", "closed")

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque = deque()
        self.busy = False
        self.closed = False
        self.body: list[bytes] = []
        self.url = b""

    def connection_made(self, transport) -> None:  # noqa: ANN001
        self.t = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc) -> None:  # noqa: ANN001
        self.closed = True

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.t.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        url = self.url.split(b"?", 1)[0]
        if method == b"POST" and url.endswith(b"/chat/completions"):
            self._chat(b"".join(self.body))
        elif method == b"POST" and url.endswith(b"/responses"):
            self._send(RESPONSES)
        elif url.endswith(b"/models"):
            self._send(MODELS)
        elif url in (b"/health", b"/v1/health", b"/ready"):
            self._send(HEALTH)
        else:
            self._send(NOT_FOUND)

    def _send(self, data: bytes) -> None:
        if self.busy or self.queue:
            self.queue.append((0.0, 0.0, data, b""))
        else:
            self.t.write(data)

    def _chat(self, body: bytes) -> None:
        m = _MODEL_RE.search(body)
        model = m.group(1).decode() if m else "bench-model"
        stream = _STREAM_RE.search(body) is not None
        usage = stream and b"include_usage" in body and re.search(rb'"include_usage"\s*:\s*true', body) is not None
        delay, hold, role, plan_body = _plan(model, stream, usage)
        if stream:
            head, rest = plan_body
        elif role is None:
            head, rest = plan_body, b""
        else:
            try:
                req = _decode.decode(body)
            except msgspec.DecodeError:
                self._send(BAD)
                return
            text = _adapter_reply(role, _last_user_text(req))
            head, rest = _http("200 OK", _completion(model, text)), b""
        if delay == 0 and hold == 0 and not self.busy and not self.queue:
            self.t.write(head + rest)
            return
        self.queue.append((delay, hold, head, rest))
        if not self.busy:
            self.busy = True
            asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self.queue and not self.closed:
                delay, hold, head, rest = self.queue.popleft()
                if delay:
                    await asyncio.sleep(delay)
                if self.closed:
                    return
                if hold:
                    self.t.write(head)
                    await asyncio.sleep(hold)
                    if self.closed:
                        return
                    self.t.write(rest)
                else:
                    self.t.write(head + rest)
        finally:
            self.busy = False


def _socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def serve(host: str, port: int) -> None:
    if uvloop is not None:
        uvloop.install()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Conn, sock=_socket(host, port), backlog=4096)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.close()

    asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    children = []
    for _ in range(args.workers - 1):
        pid = os.fork()
        if pid == 0:
            serve(args.host, args.port)
            os._exit(0)
        children.append(pid)
    try:
        serve(args.host, args.port)
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except OSError:
                pass


if __name__ == "__main__":
    main()
