"""One exception tree for everything the gateway answers with an error.

Each class carries its HTTP status and OpenAI error ``type``/``code`` (the Litestar way), and
:func:`error_body` renders the OpenAI shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import msgspec


class GatewayError(Exception):
    """Base class: an error the client sees, with its status and OpenAI error fields."""

    status_code: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})


class InvalidRequest(GatewayError):
    """Malformed JSON, a missing field or a value of the wrong shape (400)."""

    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationFailed(GatewayError):
    """Missing or unknown API key (401)."""

    status_code = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"


class ModelNotFound(GatewayError):
    """The requested model is not one of the configured targets (404)."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class NotFound(GatewayError):
    """Unknown route (404)."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(GatewayError):
    status_code = 405
    error_type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    """Request body over ``server.max_body_bytes`` (413)."""

    status_code = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(GatewayError):
    """The caller's key ran out of its token bucket (429); ``retry-after`` says when to retry."""

    status_code = 429
    error_type = "requests"
    code = "rate_limit_exceeded"


class UpstreamError(GatewayError):
    """Base for failures talking to the target LLM."""

    status_code = 502
    error_type = "upstream_error"


class UpstreamUnreachable(UpstreamError):
    """No target endpoint accepted the connection or it dropped before answering (502)."""

    status_code = 502
    code = "upstream_unreachable"


class UpstreamCredentialRefused(UpstreamError):
    """The target refused the gateway's own credential (its 401/403 would tell a client about the
    operator's account, even a masked piece of its key): a 502 of the gateway's own (502)."""

    status_code = 502
    code = "upstream_auth_failed"

    @classmethod
    def of(cls, target: str, status: int) -> UpstreamCredentialRefused:
        return cls(f"The target {target!r} refused the gateway's credential (HTTP {status}); the operator must check its api_key_env.")


class UpstreamTimeout(UpstreamError):
    """The target did not answer in time (504)."""

    status_code = 504
    code = "upstream_timeout"


class ServiceUnavailable(GatewayError):
    """The gateway is shutting down (503)."""

    status_code = 503
    code = "service_unavailable"


def error_payload(message: str, error_type: str, code: str | None = None, param: str | None = None) -> dict[str, object]:
    """The OpenAI error object as a dict."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_body(exc: GatewayError) -> bytes:
    """JSON bytes of ``exc`` in OpenAI's error shape."""
    return msgspec.json.encode(error_payload(exc.message, exc.error_type, exc.code, exc.param))


def sse_error_event(exc: GatewayError) -> bytes:
    """An SSE ``data:`` event carrying ``exc``; streams end with it, then ``[DONE]``."""
    return b"data: " + error_body(exc) + b"\n\ndata: [DONE]\n\n"
