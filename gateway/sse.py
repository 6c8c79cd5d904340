"""Server-sent-event helpers for the streaming relay (pure)."""

from __future__ import annotations

import msgspec

_USAGE = b'"usage"'


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


def _split_events(data: bytes) -> list[bytes]:
    events, start = [], 0
    while start < len(data):
        lf, crlf = data.find(b"\n\n", start), data.find(b"\r\n\r\n", start)
        ends = [e + 2 for e in (lf,) if e >= 0] + [e + 4 for e in (crlf,) if e >= 0]
        end = min(ends) if ends else len(data)
        events.append(data[start:end])
        start = end
    return events


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
        if not self._held and _USAGE not in chunk and chunk.endswith(b"\n\n"):
            return chunk
        data = self._held + chunk
        cut = _last_boundary(data)
        complete, self._held = data[:cut], data[cut:]
        if _USAGE not in complete:
            return complete
        return b"".join(e for e in _split_events(complete) if not _is_usage_only(e))

    def flush(self) -> bytes:
        """Whatever is held when the stream ends (an incomplete last event)."""
        held, self._held = self._held, b""
        return held
