"""Span attribute helpers: endpoint address, completion bodies, error types, provider names.

Every ``annotate_*`` helper writes to the current span only when it is recording, so with tracing
off they cost one context lookup.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any
from urllib.parse import urlsplit

import msgspec
from opentelemetry import trace

from gateway.telemetry import genai as A


@functools.lru_cache(maxsize=256)
def host_port(url: str) -> tuple[str, int]:
    """``(host, port)`` of a URL (the scheme's default port when it names none)."""
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def annotate_endpoint(url: str) -> None:
    """``server.address``/``server.port`` of the endpoint chosen, on the current span (if recording)."""
    span = trace.get_current_span()
    if span.is_recording():
        host, port = host_port(url)
        span.set_attribute(A.SERVER_ADDRESS, host)
        span.set_attribute(A.SERVER_PORT, port)


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Message(msgspec.Struct):
    role: str | None = None
    content: Any = None


class _Choice(msgspec.Struct):
    finish_reason: str | None = None
    message: _Message | None = None


class _Completion(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    choices: list[_Choice] = []
    usage: _Usage | None = None


_COMPLETION = msgspec.json.Decoder(_Completion)


def annotate_completion(span: trace.Span, body: bytes | None, capture: bool) -> None:
    """Response attributes from an OpenAI chat completion body (ignored when it is not one)."""
    if not body:
        return
    try:
        data = _COMPLETION.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    if data.id:
        span.set_attribute(A.RESPONSE_ID, data.id)
    if data.model:
        span.set_attribute(A.RESPONSE_MODEL, data.model)
    reasons = [c.finish_reason for c in data.choices if c.finish_reason]
    if reasons:
        span.set_attribute(A.RESPONSE_FINISH_REASONS, reasons)
    if data.usage is not None:
        if data.usage.prompt_tokens is not None:
            span.set_attribute(A.USAGE_INPUT, data.usage.prompt_tokens)
        if data.usage.completion_tokens is not None:
            span.set_attribute(A.USAGE_OUTPUT, data.usage.completion_tokens)
    if capture:
        out = [
            {"role": c.message.role or "assistant", "parts": [{"type": "text", "content": c.message.content}], "finish_reason": c.finish_reason}
            for c in data.choices
            if c.message is not None and isinstance(c.message.content, str)
        ]
        span.set_attribute(A.OUTPUT_MESSAGES, json.dumps(out, ensure_ascii=False))


def annotate_response(status: int, body: bytes | None) -> None:
    """Status, usage, finish reasons (and output text when captured) on the current CLIENT span."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute(A.HTTP_STATUS, status)
    if status >= 400:
        span.set_attribute(A.ERROR_TYPE, str(status))
        return
    annotate_completion(span, body, False)  # the stage span records its parsed output itself


def text_messages(role: str, text: str) -> str:
    """``gen_ai.input/output.messages`` JSON for one text message."""
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}], ensure_ascii=False)


def error_type(exc: BaseException) -> str:
    """``error.type`` of an exception: ``cancelled``, a gateway error's code, or the class name."""
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else type(exc).__name__


def provider_for(url: str) -> str:
    """``gen_ai.provider.name`` of a target, from its endpoint's host."""
    host = host_port(url)[0]
    if host.endswith("openai.com"):
        return "openai"
    if host.endswith("openai.azure.com"):
        return "azure.ai.openai"
    return "openai_compatible"
