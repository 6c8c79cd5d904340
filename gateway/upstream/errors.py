"""A target's error answer (status >= 400) in OpenAI's shape ``{"error": {"message", "type",
"param", "code"}}``, whatever it sent: vLLM's flat ``{"object": "error", "message": …}``, another
JSON object, plain text, an HTML proxy page or nothing. An OpenAI-shaped body is left as it is."""

from __future__ import annotations

import html
import re
from http import HTTPStatus
from typing import Any

import msgspec

from gateway.errors import error_payload

MAX_EXCERPT = 300  # characters of a text/HTML body kept in the message
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")
_FIELDS = ("message", "type", "param", "code")
_NOT_JSON = object()


def openai_error_body(status: int, body: bytes, content_type: str = "") -> bytes:
    """``body`` of a target answer with ``status`` as OpenAI error JSON; the same bytes when it
    already has that shape (an ``error`` object with a string ``message``, ``type``, ``param``
    and ``code``)."""
    data = _decode(body)
    if isinstance(data, dict):
        inner = data.get("error")
        if isinstance(inner, dict):
            if _is_openai(inner):
                return body
            return _encode(status, inner.get("message"), inner)
        if isinstance(inner, str) and inner.strip():  # {"error": "text"}
            return _encode(status, inner, data)
        return _encode(status, data.get("message", data.get("detail")), data)  # vLLM, FastAPI, others
    if isinstance(data, str):  # a JSON string
        return _encode(status, data, {})
    if data is _NOT_JSON:
        return _encode(status, _excerpt(body, content_type), {})
    return _encode(status, None, {})  # null, a list, a number: nothing to say


def _is_openai(inner: dict[str, Any]) -> bool:
    return (
        all(name in inner for name in _FIELDS)
        and isinstance(inner["message"], str)
        and isinstance(inner["type"], str)
        and (inner["param"] is None or isinstance(inner["param"], str))
        and (inner["code"] is None or isinstance(inner["code"], (str, int)))
    )


def _decode(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return _NOT_JSON


def _encode(status: int, message: Any, fields: dict[str, Any]) -> bytes:
    """The OpenAI error for ``status``: ``message`` (or the status phrase) and the string
    ``type``/``param``/``code`` found in ``fields`` (else a type from the status)."""
    if not isinstance(message, str) or not message.strip():
        message = f"The target answered HTTP {status} ({_phrase(status)})."
    error_type = fields.get("type")
    if not isinstance(error_type, str) or not error_type:
        error_type = "server_error" if status >= 500 else "invalid_request_error"
    param = fields.get("param")
    code = fields.get("code")
    return msgspec.json.encode(
        error_payload(
            message,
            error_type,
            str(code) if isinstance(code, (str, int)) and not isinstance(code, bool) else None,
            param if isinstance(param, str) else None,
        )
    )


def _excerpt(body: bytes, content_type: str) -> str | None:
    """A text or HTML body as one trimmed line (tags, scripts and styles removed), or None."""
    text = body.decode("utf-8", errors="replace")
    if "html" in content_type.lower() or text.lstrip().startswith("<"):
        text = html.unescape(_TAGS.sub(" ", text))
    text = _SPACE.sub(" ", text).strip()
    if not text:
        return None
    return text if len(text) <= MAX_EXCERPT else text[: MAX_EXCERPT - 1].rstrip() + "…"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"
