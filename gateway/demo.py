"""``mpr-gateway demo``: the gateway offline, with built-in CPU stages and an echo target.

Built-in parts (the log says so): the cleaner is real spelling correction with symspellpy and the
same bundled dictionary as the skip gate; describer and paraphraser are off (they need a model);
the echo target answers with what it received, streaming or not: chat completions, text
completions and embeddings (deterministic vectors). It speaks chat, so the gateway bridges the
Responses API to it (``targets[].api: chat``), as it would for any chat-only target.

The admin routes are on, with a key made for this run (printed, never stored) unless
``MPR_ADMIN_KEY`` gives one: the dashboard and ``mpr-gateway status`` work right away.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import struct
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
from litestar import Request, Response, get, post, route
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from gateway.admin.auth import ADMIN_KEY_ENV
from gateway.config import GatewayConfig
from gateway.config.loader import parse_config
from gateway.errors import NotFound

ECHO_PREFIX = "/_demo/echo/v1"
DEMO_MODEL = "demo-echo"
EMBEDDING_DIMENSIONS = 16
TargetApi = Literal["chat", "responses"]


def loopback_for(host: str) -> str:
    """The address the gateway reaches its own echo target at (it listens on ``host``)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "localhost") else host


def demo_config(
    port: int,
    target_url: str | None,
    target_model: str | None,
    *,
    host: str = "127.0.0.1",
    target_api: TargetApi | None = None,
    admin_key: str | None = None,
) -> GatewayConfig:
    """Routes for the demo: one target (the echo, or ``target_url``), no adapters. ``target_api``:
    how ``/v1/responses`` reaches a ``target_url`` (``responses``: natively, the default; ``chat``:
    bridged); the echo always speaks chat. ``admin_key`` turns the admin routes on."""
    target: dict[str, Any] = {"name": target_model or DEMO_MODEL, "refine": True}
    if target_url:
        target.update(endpoints=[target_url.rstrip("/")], api_key_env="OPENAI_API_KEY", api=target_api or "responses")
    else:
        host_part = loopback_for(host)
        if ":" in host_part:
            host_part = f"[{host_part}]"
        target.update(endpoints=[f"http://{host_part}:{port}{ECHO_PREFIX}"], api="chat")
    server: dict[str, Any] = {"host": host, "port": port, "probe_interval_s": 5}
    if admin_key:
        server["admin_keys"] = [admin_key]
    data = {"server": server, "targets": [target], "refinement": {"stages": ["cleaner"]}}
    return parse_config(data, base_dir=Path.cwd(), source="<demo>")


def demo_admin_key(env: Mapping[str, str]) -> tuple[str | None, bool]:
    """(the key to add to the config, whether it was made now): none when ``MPR_ADMIN_KEY`` already
    gives one (the gateway reads it), else a new random one for this run."""
    if env.get(ADMIN_KEY_ENV, "").strip():
        return None, False
    return "demo-" + secrets.token_urlsafe(18), True


def admin_hint(url: str, key: str | None, made: bool = True, model: str = DEMO_MODEL) -> list[str]:
    """What the demo prints about the dashboard and ``mpr-gateway status`` (pure): ``key`` is the
    one made for this run, or None when ``MPR_ADMIN_KEY`` gave it."""
    shown = key if key is not None else f"${ADMIN_KEY_ENV}"
    lines = [
        f"MPR gateway demo on {url} (OpenAI base URL {url}/v1, model {model})",
        f"  dashboard:   {url}/admin/   admin key: {shown}",
        f"  fleet table: {ADMIN_KEY_ENV}={shown} .venv/bin/mpr-gateway status --url {url}",
        f"  usage:       {ADMIN_KEY_ENV}={shown} .venv/bin/mpr-gateway usage --url {url}",
    ]
    if made:
        lines.append(f"  (the admin key is made for this run only; set {ADMIN_KEY_ENV} to choose it)")
    return lines


# -- the echo target --------------------------------------------------------------------------------


def _echo_text(received: Any) -> str:
    return "You sent:\n" + msgspec.json.encode(received).decode()


def _usage(text: str) -> dict[str, int]:
    words = len(text.split())
    return {"prompt_tokens": words, "completion_tokens": words, "total_tokens": 2 * words}


def _sse(chunks: list[dict[str, Any]], usage_chunk: dict[str, Any] | None) -> Stream:
    async def events() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield b"data: " + msgspec.json.encode(chunk) + b"\n\n"
            await asyncio.sleep(0)
        if usage_chunk is not None:
            yield b"data: " + msgspec.json.encode(usage_chunk) + b"\n\n"
        yield b"data: [DONE]\n\n"

    return Stream(events(), media_type="text/event-stream")


def _json(body: Any, status: int = 200) -> Response[bytes]:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


def _pieces(text: str) -> list[str]:
    return re.findall(r"\S+\s*", text) or [text]


def _wants_usage(body: Mapping[str, Any]) -> bool:
    return bool((body.get("stream_options") or {}).get("include_usage"))


@post(f"{ECHO_PREFIX}/chat/completions", status_code=200, include_in_schema=False)
async def echo_completions(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
    """Chat completions that answer with the messages received."""
    body = msgspec.json.decode(await request.body())
    text = _echo_text(body.get("messages"))
    created = int(time.time())
    base = {"id": f"chatcmpl-echo-{created}", "created": created, "model": body.get("model", DEMO_MODEL)}
    usage = _usage(text)
    if body.get("stream"):
        chunks = []
        for i, piece in enumerate(_pieces(text)):
            delta = {"content": piece} if i else {"role": "assistant", "content": piece}
            chunks.append({**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        chunks.append({**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        tail = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage} if _wants_usage(body) else None
        return _sse(chunks, tail)
    completion = {
        **base,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}],
        "usage": usage,
    }
    return _json(completion)


@post(f"{ECHO_PREFIX}/completions", status_code=200, include_in_schema=False)
async def echo_text_completions(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
    """Text completions that answer with the prompt received."""
    body = msgspec.json.decode(await request.body())
    text = _echo_text(body.get("prompt"))
    created = int(time.time())
    base = {"id": f"cmpl-echo-{created}", "object": "text_completion", "created": created, "model": body.get("model", DEMO_MODEL)}
    usage = _usage(text)
    if body.get("stream"):
        chunks = [{**base, "choices": [{"index": 0, "text": piece, "logprobs": None, "finish_reason": None}]} for piece in _pieces(text)]
        chunks.append({**base, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]})
        return _sse(chunks, {**base, "choices": [], "usage": usage} if _wants_usage(body) else None)
    return _json({**base, "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}], "usage": usage})


def embedding_of(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic unit vector for ``text`` (the same text, the same vector; no model)."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(dimensions)]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in raw]


def _inputs(value: Any) -> list[str]:
    """``input`` as texts: a string, a list of strings, token ids or lists of token ids."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [" ".join(map(str, value))]
    if isinstance(value, list):
        return [v if isinstance(v, str) else " ".join(map(str, v)) if isinstance(v, list) else str(v) for v in value]
    return [str(value)]


@post(f"{ECHO_PREFIX}/embeddings", status_code=200, include_in_schema=False)
async def echo_embeddings(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Embeddings: one deterministic vector per input (``encoding_format`` float or base64)."""
    body = msgspec.json.decode(await request.body())
    texts = _inputs(body.get("input"))
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(texts):
        vector = embedding_of(text, int(body.get("dimensions") or EMBEDDING_DIMENSIONS))
        encoded: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    tokens = sum(len(t.split()) for t in texts)
    return _json({"object": "list", "data": data, "model": body.get("model", DEMO_MODEL), "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


@get(f"{ECHO_PREFIX}/models", include_in_schema=False)
async def echo_models() -> Response[bytes]:
    """The echo's one model (the gateway's health probe asks for it)."""
    return _json({"object": "list", "data": [{"id": DEMO_MODEL, "object": "model", "created": 0, "owned_by": "mpr-gateway-demo"}]})


@route(f"{ECHO_PREFIX}/{{rest:path}}", http_method=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def echo_unknown(request: Request[Any, Any, Any], rest: str) -> Response[bytes]:
    """Anything else: a 404 that names the path the client asked for, not the echo's own."""
    raise NotFound(
        f"The demo's echo model does not serve {request.method} /v1{rest}: it answers chat completions, "
        "completions, embeddings and (bridged by the gateway) responses."
    )


def echo_routes() -> list[ControllerRouterHandler]:
    """Every route of the echo target."""
    return [echo_completions, echo_text_completions, echo_embeddings, echo_models, echo_unknown]
