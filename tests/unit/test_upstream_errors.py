"""A target's error body in OpenAI's shape: :func:`gateway.upstream.errors.openai_error_body`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.upstream.errors import MAX_EXCERPT, openai_error_body


def error(status: int, body: bytes, content_type: str = "") -> dict[str, Any]:
    out = json.loads(openai_error_body(status, body, content_type))
    assert set(out) == {"error"} and set(out["error"]) == {"message", "type", "param", "code"}
    return out["error"]


def test_vllm_flat_error_keeps_message_type_param_and_code() -> None:
    body = json.dumps(
        {"object": "error", "message": "max_tokens is too large", "type": "BadRequestError", "param": "max_tokens", "code": 400}
    ).encode()
    assert error(400, body, "application/json") == {
        "message": "max_tokens is too large",
        "type": "BadRequestError",
        "param": "max_tokens",
        "code": "400",
    }


def test_vllm_error_without_type_gets_one_from_the_status() -> None:
    assert error(503, b'{"object": "error", "message": "overloaded"}') == {
        "message": "overloaded", "type": "server_error", "param": None, "code": None
    }
    assert error(422, b'{"detail": "Field required"}')["type"] == "invalid_request_error"
    assert error(422, b'{"detail": "Field required"}')["message"] == "Field required"


def test_openai_shaped_body_passes_byte_for_byte() -> None:
    body = b'{"error":{"message":"Rate limit","type":"requests","param":null,"code":"rate_limit_exceeded"},"extra":1}'
    assert openai_error_body(429, body, "application/json") is body
    numeric = b'{"error": {"message": "bad", "type": "BadRequestError", "param": "n", "code": 400}}'
    assert openai_error_body(400, numeric) is numeric


def test_incomplete_openai_error_is_completed() -> None:
    assert error(401, b'{"error": {"message": "no key"}}') == {
        "message": "no key", "type": "invalid_request_error", "param": None, "code": None
    }
    assert error(500, b'{"error": "boom"}')["message"] == "boom"


def test_plain_text_becomes_a_trimmed_message() -> None:
    assert error(502, b"  upstream connect error\n  or disconnect  \n", "text/plain")["message"] == "upstream connect error or disconnect"
    long = error(500, b"x" * 5000, "text/plain")["message"]
    assert len(long) == MAX_EXCERPT and long.endswith("…")


def test_html_page_becomes_its_text() -> None:
    page = b"<html><head><style>h1{}</style><title>502</title></head><body><h1>502 Bad Gateway</h1><hr>nginx &amp; co</body></html>"
    err = error(502, page, "text/html; charset=utf-8")
    assert err["message"] == "502 502 Bad Gateway nginx & co"
    assert err["type"] == "server_error"


@pytest.mark.parametrize("body", [b"", b"   ", b"<html></html>", b"null", b"[]"])
def test_empty_body_gets_the_status_phrase(body: bytes) -> None:
    err = error(503, body)
    assert err["message"] == "The target answered HTTP 503 (Service Unavailable)."
    assert err["code"] is None and err["param"] is None


def test_invalid_json_is_treated_as_text() -> None:
    err = error(500, b'{"error": {"message": "cut', "application/json")
    assert err["message"] == '{"error": {"message": "cut'
    assert err["type"] == "server_error"


def test_non_utf8_and_unknown_status() -> None:
    assert error(599, b"\xff\xfe oops")["message"].endswith("oops")
    assert error(599, b"")["message"] == "The target answered HTTP 599 (error)."
