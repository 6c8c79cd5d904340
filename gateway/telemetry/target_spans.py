"""The target call's CLIENT span (``chat {upstream model}``) and its ``traceparent``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.telemetry import genai as A
from gateway.telemetry.attributes import annotate_completion, error_type, provider_for

if TYPE_CHECKING:
    from gateway.config.models import TargetConfig

_REQUEST_PARAMS = (
    ("temperature", A.REQUEST_TEMPERATURE),
    ("top_p", A.REQUEST_TOP_P),
    ("seed", A.REQUEST_SEED),
    ("n", A.REQUEST_CHOICE_COUNT),
)


class TargetCall:
    """The CLIENT span of one target call. ``headers`` carry its ``traceparent``.

    Use as ``with call: reply = await target.send(..., extra_headers=call.headers)``; an exception
    ends the span with ``error.type``; otherwise end it with :meth:`finish` (complete body) or
    :meth:`finish_stream` (after the relay).
    """

    __slots__ = ("span", "headers", "_token", "_capture")

    def __init__(self, span: trace.Span | None, headers: dict[str, str] | None, capture: bool = False) -> None:
        self.span = span
        self.headers = headers
        self._capture = capture

    def __enter__(self) -> TargetCall:
        if self.span is not None:
            self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if self.span is not None:
            otel_context.detach(self._token)
            if exc is not None:
                self.fail(exc)
        return False

    def fail(self, exc: BaseException | str) -> None:
        span = self.span
        if span is None:
            return
        kind = exc if isinstance(exc, str) else error_type(exc)
        span.set_attribute(A.ERROR_TYPE, kind)
        span.set_status(Status(StatusCode.ERROR, kind))
        span.end()
        self.span = None

    def finish(self, status: int, body: bytes | None) -> None:
        """End after a complete (non-streaming) answer: status, usage, finish reasons."""
        span = self.span
        if span is None:
            return
        span.set_attribute(A.HTTP_STATUS, status)
        if status >= 400:
            span.set_attribute(A.ERROR_TYPE, str(status))
            span.set_status(Status(StatusCode.ERROR, str(status)))
        else:
            annotate_completion(span, body, self._capture)
        span.end()
        self.span = None

    def finish_stream(self, *, aborted: bool, broken: bool = False) -> None:
        span = self.span
        if span is None:
            return
        span.set_attribute(A.HTTP_STATUS, 200)
        if aborted or broken:
            kind = "client_disconnected" if aborted else "stream_broken"
            span.set_attribute(A.ERROR_TYPE, kind)
            span.set_status(Status(StatusCode.ERROR, kind))
        span.end()
        self.span = None


NULL_CALL = TargetCall(None, None)


def target_attributes(config: TargetConfig, payload: dict[str, Any], stream: bool, capture: bool) -> dict[str, Any]:
    """The target span's request attributes (GenAI conventions) from the config and the body."""
    upstream = config.model_for_upstream
    attrs: dict[str, Any] = {
        A.OPERATION: A.CHAT,
        A.PROVIDER: provider_for(config.base_urls[0]),
        A.REQUEST_MODEL: upstream,
        A.REQUEST_STREAM: stream,
        A.TARGET: config.name,
    }
    for key, name in _REQUEST_PARAMS:
        value = payload.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attrs[name] = value
    max_tokens = payload.get("max_completion_tokens", payload.get("max_tokens"))
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        attrs[A.REQUEST_MAX_TOKENS] = max_tokens
    if capture:
        try:
            attrs[A.INPUT_MESSAGES] = json.dumps(payload.get("messages"), ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            pass
    return attrs


def start_target_call(
    tracer: trace.Tracer, config: TargetConfig, payload: dict[str, Any], stream: bool, capture: bool, attempt: int = 1
) -> TargetCall:
    """Start the target's CLIENT span (one per attempt); the returned call's headers carry its context."""
    attrs = target_attributes(config, payload, stream, capture)
    attrs[A.ATTEMPT] = attempt
    span = tracer.start_span(f"chat {config.model_for_upstream}", kind=SpanKind.CLIENT, attributes=attrs)
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return TargetCall(span, carrier, capture)
