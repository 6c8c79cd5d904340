"""Pure helpers over OpenAI chat ``messages``: find the text to refine, put the refined text back.

``content`` may be a string or a list of parts; only ``text`` parts of the last user message are
refined, every other part (images, audio, files) stays where it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gateway.errors import InvalidRequest

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(frozen=True, slots=True)
class PromptSlot:
    """Where the refinable text lives: message index and the text it holds."""

    index: int
    text: str


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


def find_prompt(messages: list[dict[str, Any]]) -> PromptSlot | None:
    """The last user message's text, or None when the conversation does not end in user text."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("role") == "user":
            text = _text_of(message.get("content"))
            return PromptSlot(index, text) if text is not None and text.strip() else None
    return None


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


def apply_refinement(
    messages: list[dict[str, Any]],
    slot: PromptSlot,
    refined: str,
    description: str | None,
    placement: Literal["system", "append"],
) -> list[dict[str, Any]]:
    """A new message list with the refined prompt and the description placed as configured."""
    out = list(messages)
    text = refined
    if description and placement == "append":
        text = f"{refined}\n\nContext: {description}"
    if text != slot.text:
        out[slot.index] = {**out[slot.index], "content": replace_text(out[slot.index].get("content"), text)}
    if description and placement == "system":
        context = f"Context: {description}"
        first = out[0]
        if first.get("role") in ("system", "developer") and isinstance(first.get("content"), str):
            out[0] = {**first, "content": f"{first['content']}\n\n{context}"}
        else:
            out.insert(0, {"role": "system", "content": context})
    return out
