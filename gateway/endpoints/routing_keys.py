"""A request's affinity key (pure): what keeps a conversation on the target replica whose prefix
cache holds it (``balance: affinity``, :mod:`gateway.upstream.affinity`).

In order: the client's ``prompt_cache_key`` (chat and Responses: OpenAI's own routing hint); else
the conversation's opening — the system/developer text before the first user message (Responses:
``instructions``) and that first user message, as the client sent them. Both stay the same on
every turn and every tool step of one conversation, so turn N+1 follows turn N; a one-turn request
is its own conversation. The key is read before refinement changes the request (a new turn's
description must not move the conversation).

Each key carries the caller's tenant partition: two tenants with the same opening are placed
independently, so one cannot steer its requests onto the replica that holds another's prefix.

A shared long system prompt alone is deliberately not a key: it would pile every conversation
that shares it onto one replica (only the load bound would spread them), while its blocks are in
every replica's cache after its first request there anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.upstream.affinity import key_hash


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _cache_key(payload: dict[str, Any], partition: str) -> int | None:
    value = payload.get("prompt_cache_key")
    return key_hash("prompt_cache_key", partition, value) if isinstance(value, str) and value else None


def _opening(messages: Iterable[dict[str, Any]], partition: str, system: list[str]) -> int | None:
    """The key of a conversation's opening: the system/developer texts before its first user
    message (after ``system``) and that message (None: neither)."""
    for message in messages:
        role = message.get("role")
        if role == "user":
            return key_hash("chat", partition, "\n".join(system), _text(message.get("content")))
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
    return key_hash("chat", partition, "\n".join(system), "") if system else None


def chat_affinity(payload: dict[str, Any], partition: str = "shared") -> int | None:
    """A chat completions request's key for a caller of tenant ``partition`` (None: nothing to key on)."""
    hinted = _cache_key(payload, partition)
    if hinted is not None:
        return hinted
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return None
    return _opening((m for m in messages if isinstance(m, dict)), partition, [])


def responses_affinity(payload: dict[str, Any], partition: str = "shared") -> int | None:
    """A Responses API request's key for a caller of tenant ``partition`` (None: nothing to key on)."""
    hinted = _cache_key(payload, partition)
    if hinted is not None:
        return hinted
    instructions = payload.get("instructions")
    system = [instructions] if isinstance(instructions, str) else []
    value = payload.get("input")
    if isinstance(value, str):
        return key_hash("chat", partition, "\n".join(system), value)
    if not isinstance(value, list):
        return None
    return _opening((i for i in value if isinstance(i, dict) and i.get("type", "message") == "message"), partition, system)
