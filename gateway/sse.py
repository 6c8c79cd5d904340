"""Server-sent-event helpers for the streaming relay (pure)."""

from __future__ import annotations

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


def _is_usage_only(event: bytes) -> bool:
    """An event whose JSON has ``"choices": []`` and a usage object (OpenAI's final usage chunk)."""
    for line in event.splitlines():
        if line.startswith(b"data:"):
            try:
                obj = msgspec.json.decode(line[5:].strip())
            except msgspec.DecodeError:
                return False
            return isinstance(obj, dict) and obj.get("choices") == [] and bool(obj.get("usage"))
    return False


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


def _without_usage_only(data: bytes) -> bytes:
    """``data`` less its usage-only events."""
    kept: list[bytes] = []
    pos = 0
    for start, end in usage_events(data):
        if _is_usage_only(data[start:end]):
            kept.append(data[pos:start])
            pos = end
    if not pos:
        return data
    kept.append(data[pos:])
    return b"".join(kept)


class UsageFilter:
    """Drops the usage-only chunk from an SSE byte stream, for clients that did not ask for it.

    Chunks that end on an event boundary and mention no usage pass through untouched (the usual
    case); otherwise bytes are held until their event is complete, so a usage event split across
    reads is still recognised.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self._held and chunk.endswith(b"\n\n") and not reports_usage(chunk):
            return chunk
        data = self._held + chunk
        cut = _last_boundary(data)
        complete, self._held = data[:cut], data[cut:]
        if not reports_usage(complete):
            return complete
        return _without_usage_only(complete)

    def flush(self) -> bytes:
        """Whatever is held when the stream ends (an incomplete last event)."""
        held, self._held = self._held, b""
        return held
