"""``mpr-gateway demo``: the gateway offline, with built-in CPU stages and an echo target.

Built-in parts (the log says so): the cleaner is real spelling correction with symspellpy and the
same bundled dictionary as the skip gate; describer and paraphraser are off (they need a model);
the echo target answers with the messages it received, streaming or not.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.response import Stream

from gateway.config import GatewayConfig
from gateway.config.loader import parse_config

ECHO_PREFIX = "/_demo/echo/v1"
DEMO_MODEL = "demo-echo"


def demo_config(port: int, target_url: str | None, target_model: str | None) -> GatewayConfig:
    """Routes for the demo: one target (the echo, or ``target_url``), no adapters."""
    target: dict[str, Any] = {"name": target_model or DEMO_MODEL, "refine": True}
    if target_url:
        target.update(endpoints=[target_url.rstrip("/")], api_key_env="OPENAI_API_KEY")
    else:
        target.update(endpoints=[f"http://127.0.0.1:{port}{ECHO_PREFIX}"])
    data = {
        "server": {"host": "127.0.0.1", "port": port, "probe_interval_s": 5},
        "targets": [target],
        "refinement": {"stages": ["cleaner"]},
    }
    from pathlib import Path

    return parse_config(data, base_dir=Path.cwd(), source="<demo>")


def _echo_text(messages: Any) -> str:
    return "You sent:\n" + msgspec.json.encode(messages).decode()


@post(f"{ECHO_PREFIX}/chat/completions", status_code=200, include_in_schema=False)
async def echo_completions(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
    """An OpenAI-compatible target that answers with the messages it received."""
    body = msgspec.json.decode(await request.body())
    text = _echo_text(body.get("messages"))
    created = int(time.time())
    base = {"id": f"chatcmpl-echo-{created}", "created": created, "model": body.get("model", DEMO_MODEL)}
    usage = {"prompt_tokens": len(text.split()), "completion_tokens": len(text.split()), "total_tokens": 2 * len(text.split())}
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def events() -> Any:
            for i, piece in enumerate(re.findall(r"\S+\s*", text)):
                delta = {"content": piece} if i else {"role": "assistant", "content": piece}
                chunk = {**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                yield b"data: " + msgspec.json.encode(chunk) + b"\n\n"
                await asyncio.sleep(0)
            final = {**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield b"data: " + msgspec.json.encode(final) + b"\n\n"
            if include_usage:
                yield b"data: " + msgspec.json.encode({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}) + b"\n\n"
            yield b"data: [DONE]\n\n"

        return Stream(events(), media_type="text/event-stream")
    completion = {
        **base,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}],
        "usage": usage,
    }
    return Response(msgspec.json.encode(completion), media_type="application/json")
