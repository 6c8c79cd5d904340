"""Pure helpers over OpenAI Responses requests and streams (no I/O).

* the user turns (:func:`input_turns`): a string ``input``, or the user message items of an
  ``input`` array, the last of them new when ``input`` ends with it (``content`` a string, or ``input_text`` parts; images, files and audio parts
  stay where they are);
* putting each user turn's presentation back (:func:`present_input`): the refined text, and an
  accepted description in a system message item right before it (or after its text);
* :class:`StreamWatch`, which follows a relayed Responses SSE stream (the response id, the last
  ``sequence_number``, whether a terminal event came) so a broken stream can be ended with a
  ``response.failed`` event instead of a bare cut.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from gateway.errors import InvalidRequest
from gateway.messages import context_text, replace_text
from gateway.refinement.history import Presentation

TERMINAL_EVENTS = frozenset({"response.completed", "response.failed", "response.incomplete", "error"})
"""Events after which a Responses stream is complete (``error``: the target reported its failure)."""

_TEXT_PART = "input_text"


@dataclass(frozen=True, slots=True)
class InputSlot:
    """Where the refinable text lives: ``index`` None = ``input`` is a string, else the item index."""

    index: int | None
    text: str


def validate_input(value: Any, max_items: int) -> None:
    """Check the shape the gateway relies on (``input`` absent, a string or an array of objects);
    everything else is the target's business."""
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list):
        raise InvalidRequest("'input' must be a string or an array of input items", param="input")
    if len(value) > max_items:
        raise InvalidRequest(f"'input' has {len(value)} items; the limit is {max_items}", param="input")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRequest(f"input[{i}] must be an object", param=f"input[{i}]")
        content = item.get("content")
        if item.get("role") is None or content is None:
            continue
        if not isinstance(content, (str, list)):
            raise InvalidRequest(f"input[{i}].content must be a string or an array of parts", param=f"input[{i}].content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise InvalidRequest(f"input[{i}].content[{j}] must be an object with a 'type'", param=f"input[{i}].content[{j}]")
                if part["type"] == _TEXT_PART and not isinstance(part.get("text"), str):
                    raise InvalidRequest(f"input[{i}].content[{j}].text must be a string", param=f"input[{i}].content[{j}].text")


def _is_user_message(item: Any) -> bool:
    return isinstance(item, dict) and item.get("role") == "user" and item.get("type", "message") == "message"


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p["text"] for p in content if isinstance(p, dict) and p.get("type") == _TEXT_PART and isinstance(p.get("text"), str)]
        return "\n\n".join(texts) if texts else None
    return None


def input_turns(value: Any) -> tuple[list[InputSlot], bool]:
    """Every user message of ``input`` in order (a string ``input`` is one; text ``""`` when an
    item has none) and whether ``input`` ends with one — a new turn, the only one ever refined."""
    if isinstance(value, str):
        return [InputSlot(None, value)], True
    if not isinstance(value, list):
        return [], False
    slots = [InputSlot(index, _text_of(item.get("content")) or "") for index, item in enumerate(value) if _is_user_message(item)]
    return slots, bool(slots) and slots[-1].index == len(value) - 1


def find_input(value: Any) -> InputSlot | None:
    """The new user turn's text, or None (no ``input``, or it does not end with user text)."""
    slots, new = input_turns(value)
    return slots[-1] if new and slots[-1].text.strip() else None


def present_input(
    payload: dict[str, Any],
    shown: Sequence[tuple[InputSlot, Presentation]],
    placement: Literal["system", "append"],
) -> None:
    """Put each user turn in ``shown`` into ``payload["input"]`` (in place) as presented: its
    refined text, and its description in a system message item right before it (``system``) or
    after its text (``append``). ``instructions`` are never touched: they are not carried over to
    a ``previous_response_id`` conversation, so a context there would vanish from the history the
    target keeps."""
    value = payload.get("input")
    items: list[Any] = [{"role": "user", "content": value}] if isinstance(value, str) else list(value or [])
    changed = False
    for slot, presentation in sorted(shown, key=lambda pair: -1 if pair[0].index is None else pair[0].index, reverse=True):
        index = 0 if slot.index is None else slot.index
        text = presentation.refined
        description = presentation.description
        if description and placement == "append":
            text = f"{text}\n\n{context_text(description)}"
        if text != slot.text:
            item = items[index]
            items[index] = {**item, "content": replace_text(item.get("content"), text, _TEXT_PART)}
            changed = True
        if description and placement == "system":
            items.insert(index, {"role": "system", "content": context_text(description)})
            changed = True
    if not changed:
        return
    if isinstance(value, str) and len(items) == 1:
        payload["input"] = items[0]["content"]  # a string stays a string when only its text changed
    else:
        payload["input"] = items


# -- response objects and stream events ---------------------------------------------------------


def new_id(prefix: str = "resp") -> str:
    return f"{prefix}_mpr{uuid.uuid4().hex}"


def response_object(
    response_id: str,
    model: str,
    *,
    status: str = "completed",
    output: list[dict[str, Any]] | None = None,
    created_at: int | None = None,
    error: dict[str, Any] | None = None,
    request: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``Response`` object with every field the OpenAI schema requires; request parameters
    (instructions, tools, temperature …) are echoed from ``request`` when given."""
    req = request or {}
    now = int(time.time())
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at if created_at is not None else now,
        "status": status,
        "completed_at": now if status == "completed" else None,
        "error": error,
        "incomplete_details": None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "model": model,
        "output": output or [],
        "parallel_tool_calls": req.get("parallel_tool_calls", True),
        "previous_response_id": req.get("previous_response_id"),
        "reasoning": req.get("reasoning"),
        "store": req.get("store", False),
        "temperature": req.get("temperature"),
        "text": req.get("text") or {"format": {"type": "text"}},
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": req.get("tools") or [],
        "top_p": req.get("top_p"),
        "truncation": req.get("truncation", "disabled"),
        "metadata": req.get("metadata") or {},
    }
    if usage is not None:  # not nullable in the schema
        response["usage"] = usage
    return response


def sse_event(event: dict[str, Any]) -> bytes:
    """One SSE event as OpenAI sends it: ``event: <type>`` then ``data: <json>``."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + msgspec.json.encode(event) + b"\n\n"


class _Response(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    created_at: float | None = None


class _Event(msgspec.Struct):
    type: str = ""
    sequence_number: int | None = None
    response: _Response | None = None


_EVENT = msgspec.json.Decoder(_Event)


class StreamWatch:
    """Follows a Responses SSE byte stream as it is relayed (the bytes themselves pass untouched).

    After the stream: ``response_id`` (from the first event carrying a response), ``terminal``
    (a completed / failed / incomplete / error event came) and :meth:`failure`, the event that
    ends a stream the target broke off.
    """

    __slots__ = ("response_id", "model", "created_at", "sequence", "terminal", "_held")

    def __init__(self, model: str) -> None:
        self.response_id: str | None = None
        self.model = model
        self.created_at: int | None = None
        self.sequence = -1
        self.terminal = False
        self._held = b""

    def feed(self, chunk: bytes) -> None:
        data = self._held + chunk if self._held else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        start = 0
        while True:
            end = data.find(b"\n\n", start)
            if end < 0:
                break
            self._event(data[start:end])
            start = end + 2
        self._held = data[start:]

    def _event(self, block: bytes) -> None:
        for line in block.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            try:
                event = _EVENT.decode(line[5:].strip())
            except (msgspec.DecodeError, msgspec.ValidationError):
                return
            if event.sequence_number is not None and event.sequence_number > self.sequence:
                self.sequence = event.sequence_number
            if event.type in TERMINAL_EVENTS:
                self.terminal = True
            response = event.response
            if response is not None and self.response_id is None and response.id:
                self.response_id = response.id
                self.model = response.model or self.model
                self.created_at = int(response.created_at) if response.created_at is not None else None
            return

    def failure(self, message: str, request: dict[str, Any] | None = None) -> bytes:
        """A ``response.failed`` event (status ``failed``, ``error.code`` ``server_error``) that
        ends the stream; it starts on an event boundary even when the stream broke mid-event."""
        self.sequence += 1
        response = response_object(
            self.response_id or new_id(),
            self.model,
            status="failed",
            created_at=self.created_at,
            error={"code": "server_error", "message": message},
            request=request,
        )
        event = sse_event({"type": "response.failed", "sequence_number": self.sequence, "response": response})
        prefix = b"\n\n" if self._held.strip() else b""
        self._held = b""
        self.terminal = True
        return prefix + event
