"""Token usage read from OpenAI answers (pure): a JSON body's ``usage``, or the usage an SSE
stream reports (chat/completions' usage chunk, Responses' ``response.completed``)."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.sse import event_object, reports_usage, usage_events

_USAGE = b'"usage"'
MAX_EVENT = 1 << 20  # bytes held waiting for the end of an event
Usage = tuple[int, int]
"""(prompt tokens, completion tokens)."""


def usage_of(obj: Any) -> Usage | None:
    """The usage of a decoded answer or SSE event: ``usage`` (chat, completions, embeddings) or
    ``response.usage`` (Responses events); ``input_tokens``/``output_tokens`` are read too."""
    if not isinstance(obj, dict):
        return None
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        response = obj.get("response")
        usage = response.get("usage") if isinstance(response, dict) else None
        if not isinstance(usage, dict):
            return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
    if not isinstance(prompt, int) or not isinstance(completion, int) or isinstance(prompt, bool):
        return None
    return max(0, prompt), max(0, completion or 0)


class _NotJson:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON = _NotJson()
"""What :func:`decode_answer` returns for a body that is not JSON."""


def decode_answer(body: bytes) -> Any:
    """A complete answer decoded once, for both its usage (:func:`usage_of`) and the check that a
    200 is JSON: the JSON value, or :data:`NOT_JSON`."""
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return NOT_JSON


def body_usage(body: bytes) -> Usage | None:
    """The usage of a complete JSON answer, or None (no usage, not JSON)."""
    if _USAGE not in body:
        return None
    try:
        return usage_of(msgspec.json.decode(body))
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None


class StreamUsage:
    """Feeds on an SSE byte stream as it arrives; :attr:`usage` is the last usage it reported.
    Events that do not mention usage are never decoded."""

    __slots__ = ("_held", "usage")

    def __init__(self) -> None:
        self._held = b""
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> None:
        if not self._held and chunk.endswith(b"\n\n") and not reports_usage(chunk):
            return  # the usual chunk: complete events, no usage (or "usage": null)
        data = self._held + chunk
        cut = max(data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n"))
        if cut < 0:
            self._held = data if len(data) <= MAX_EVENT else b""  # no usage event is that long
            return
        complete, self._held = data[:cut], data[cut:].lstrip(b"\r\n")
        if reports_usage(complete):
            self._scan(complete)

    def _scan(self, data: bytes) -> None:
        for start, end in usage_events(data):
            self.take(event_object(data[start:end]))

    def take(self, obj: Any) -> None:
        """A decoded event that reports usage (from :class:`~gateway.sse.UsageFilter`, which
        decodes a stream it filters once for both)."""
        found = usage_of(obj)
        if found is not None:
            self.usage = found

    def close(self) -> None:
        """The stream ended: an unterminated last event is read too."""
        if self._held and _USAGE in self._held:
            self._scan(self._held)
        self._held = b""
