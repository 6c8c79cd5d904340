"""Pure helpers over OpenAI chat ``messages``: find the user turns, put their presentations back.

``content`` may be a string or a list of parts; only ``text`` parts of user messages are refined,
every other part (images, audio, files) stays where it was. Only a new last user turn is refined;
earlier ones get the presentation remembered for them (:mod:`gateway.refinement.history`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from gateway.errors import InvalidRequest
from gateway.refinement.history import Presentation

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class PromptSlot(NamedTuple):
    """Where the refinable text lives: message index and the text it holds (a tuple: made for
    every user turn of every refined request, and a frozen dataclass's ``__init__`` costs ≈4×)."""

    index: int
    text: str


_new_slot = tuple.__new__  # PromptSlot(index, text) without its Python-level ``__new__`` (half the cost)


def validate_messages(messages: Any, max_messages: int) -> list[dict[str, Any]]:
    """Check the shape the gateway relies on; everything else is the target's business."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    if len(messages) > max_messages:
        raise InvalidRequest(f"'messages' has {len(messages)} items; the limit is {max_messages}", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if not isinstance(role, str) or role not in _ROLES:  # an unhashable role (a list) raised TypeError
            raise InvalidRequest(f"messages[{i}].role must be one of {sorted(_ROLES)}", param=f"messages[{i}].role")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise InvalidRequest(f"messages[{i}].content must be a string or an array of parts", param=f"messages[{i}].content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise InvalidRequest(
                        f"messages[{i}].content[{j}] must be an object with a 'type'", param=f"messages[{i}].content[{j}]"
                    )
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise InvalidRequest(
                        f"messages[{i}].content[{j}].text must be a string", param=f"messages[{i}].content[{j}].text"
                    )
    return messages


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)]
        return "\n\n".join(texts) if texts else None
    return None


def user_turns(messages: list[dict[str, Any]]) -> tuple[list[PromptSlot], bool]:
    """Every user message in order (text ``""`` when it has none) and whether the conversation
    ends with one — a new turn, the only one ever refined (a conversation ending with a tool
    result or an assistant message has none)."""
    slots = []
    for index, message in enumerate(messages):  # a loop, not a comprehension: one call fewer on 3.11
        if message.get("role") == "user":
            content = message.get("content")
            text = content if type(content) is str else _text_of(content)  # a string (most): no call
            slots.append(_new_slot(PromptSlot, (index, text or "")))
    return slots, bool(slots) and slots[-1].index == len(messages) - 1


def find_prompt(messages: list[dict[str, Any]]) -> PromptSlot | None:
    """The new user turn's text: the last message when it is a user message with text, else None."""
    slots, new = user_turns(messages)
    return slots[-1] if new and slots[-1].text.strip() else None


def replace_text(content: Any, new_text: str, part_type: str = "text") -> Any:
    """``content`` (a string, or a list of parts) with its text replaced by ``new_text``: the first
    ``part_type`` part takes it, the other text parts are dropped, other parts stay in place."""
    if isinstance(content, str):
        return new_text
    parts: list[Any] = []
    placed = False
    for part in content:
        if isinstance(part, dict) and part.get("type") == part_type:
            if not placed:
                parts.append({**part, "text": new_text})
                placed = True
            continue
        parts.append(part)
    return parts


def context_text(description: str) -> str:
    """The describer's context as it is shown to the target."""
    return f"Context: {description}"


def present(
    messages: list[dict[str, Any]],
    shown: Sequence[tuple[PromptSlot, Presentation]],
    placement: Literal["system", "append"],
) -> list[dict[str, Any]]:
    """A new message list with each user turn in ``shown`` as presented: its refined text, and its
    description next to it — a system message right before it (``system``) or after its text
    (``append``). Nothing else moves, so every other message keeps its bytes and its place."""
    out = list(messages)
    for slot, presentation in sorted(shown, key=lambda pair: pair[0].index, reverse=True):
        text = presentation.refined
        description = presentation.description
        if description and placement == "append":
            text = f"{text}\n\n{context_text(description)}"
        if text != slot.text:
            message = out[slot.index]
            out[slot.index] = {**message, "content": replace_text(message.get("content"), text)}
        if description and placement == "system":
            out.insert(slot.index, {"role": "system", "content": context_text(description)})
    return out
