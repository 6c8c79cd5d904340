"""Server-sent-event helpers for the streaming relay (pure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

_USAGE = b'"usage"'
_NULL = b"null"


def reports_usage(data: bytes) -> bool:
    """Whether ``data`` has a ``"usage"`` key whose value is not ``null``. A stream that asked
    for usage carries ``"usage": null`` in every chunk (OpenAI, vLLM): those chunks need no
    decoding. A false positive (the bytes inside a string) only costs the careful path."""
    start = data.find(_USAGE)
    while start >= 0:
        end = start + len(_USAGE)
        value = data[end : end + 24].lstrip()
        if not value.startswith(b":") or not value[1:].lstrip().startswith(_NULL):
            return True
        start = data.find(_USAGE, end)
    return False


def event_object(event: bytes) -> Any:
    """The decoded JSON of an event's first ``data:`` line (None: none, or not JSON)."""
    for line in event.splitlines():
        if line.startswith(b"data:"):
            try:
                return msgspec.json.decode(line[5:].strip())
            except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
                return None
    return None


def _is_usage_only(obj: Any) -> bool:
    """A decoded event with ``"choices": []`` and a usage object (OpenAI's final usage chunk)."""
    return isinstance(obj, dict) and obj.get("choices") == [] and bool(obj.get("usage"))


def _last_boundary(data: bytes) -> int:
    """Index just past the last complete event (``\\n\\n`` or ``\\r\\n\\r\\n``), or 0."""
    lf, crlf = data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def _event_around(data: bytes, at: int) -> tuple[int, int]:
    """(start, end) of the event holding byte ``at``: after the boundary before it, through the
    boundary after it (or the end of ``data``)."""
    lf, crlf = data.rfind(b"\n\n", 0, at), data.rfind(b"\r\n\r\n", 0, at)
    start = max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
    lf, crlf = data.find(b"\n\n", at), data.find(b"\r\n\r\n", at)
    ends = [e + 2 for e in (lf,) if e >= 0] + [e + 4 for e in (crlf,) if e >= 0]
    return start, min(ends) if ends else len(data)


def usage_events(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each event in ``data`` that reports usage (``"usage"`` not null), in order;
    only those are looked at closely, the others are never split or decoded."""
    spans: list[tuple[int, int]] = []
    at = data.find(_USAGE)
    while at >= 0:
        start, end = _event_around(data, at)
        if reports_usage(data[start:end]):
            spans.append((start, end))
        at = data.find(_USAGE, end)
    return spans


class UsageFilter:
    """Drops the usage-only chunk from an SSE byte stream, for clients that did not ask for it.

    Chunks that end on an event boundary and report no usage pass through untouched (the usual
    case); otherwise bytes are held until their event is complete, so a usage event split across
    reads is still recognised. ``on_usage`` (the tenant's stream meter) gets every decoded event
    that reports usage, so a stream is decoded once for both.
    """

    __slots__ = ("_held", "on_usage")

    def __init__(self, on_usage: Callable[[Any], None] | None = None) -> None:
        self._held = b""
        self.on_usage = on_usage

    def feed(self, chunk: bytes) -> bytes:
        if not self._held and chunk.endswith(b"\n\n") and not reports_usage(chunk):
            return chunk
        data = self._held + chunk
        cut = _last_boundary(data)
        complete, self._held = data[:cut], data[cut:]
        if not reports_usage(complete):
            return complete
        return self._without_usage_only(complete)

    def _without_usage_only(self, data: bytes) -> bytes:
        kept: list[bytes] = []
        pos = 0
        on_usage = self.on_usage
        for start, end in usage_events(data):
            obj = event_object(data[start:end])
            if on_usage is not None:
                on_usage(obj)
            if _is_usage_only(obj):
                kept.append(data[pos:start])
                pos = end
        if not pos:
            return data
        kept.append(data[pos:])
        return b"".join(kept)

    def flush(self) -> bytes:
        """Whatever is held when the stream ends (an incomplete last event), its usage reported."""
        held, self._held = self._held, b""
        if self.on_usage is not None and reports_usage(held):
            for start, end in usage_events(held):
                self.on_usage(event_object(held[start:end]))
        return held
