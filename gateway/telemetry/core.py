"""The gateway's telemetry: tracer (or none), metrics, and the span helpers the core calls.

Span tree of one refined chat completion::

    POST /v1/chat/completions            SERVER   (Litestar's OpenTelemetry plugin; inbound traceparent)
    ├── refine                           INTERNAL (mpr.refinement, mpr.skipped, mpr.fallback_reason ...)
    │   ├── chat {cleaner lora}          CLIENT   (gen_ai.*, mpr.stage.accepted/drift/reason)
    │   ├── chat {describer lora}        CLIENT   (the three overlap in time)
    │   ├── chat {paraphraser lora}      CLIENT
    │   └── merge                        INTERNAL
    └── chat {upstream model}            CLIENT   (gen_ai.*, usage, finish reasons, error.type)

Each CLIENT span's own context goes out in ``traceparent`` (never the inbound header), so vLLM's
spans nest under the stage span. With tracing off every helper returns a shared no-op object or
the plain coroutine: no span objects, no header dicts; metrics are still recorded.

Stage spans are ended after the merge (with the time the call actually finished as their end
time) so that the merge's verdict - accepted, drift, reason - lands on the stage's own span.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.config.models import TelemetryConfig
from gateway.telemetry import genai as A
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.tracing import build_tracer_provider

if TYPE_CHECKING:
    from gateway.config.models import Role, TargetConfig
    from gateway.refinement.pipeline import RefinementOutcome
    from gateway.refinement.results import StageResult, StageVerdict

log = logging.getLogger("gateway.telemetry")

_REFINE: ContextVar[_RefineTrace | None] = ContextVar("mpr_refine_trace", default=None)


def stage_outcome(verdict: StageVerdict) -> str:
    """The metric outcome of one stage verdict."""
    if verdict.accepted:
        return "accepted"
    if verdict.error is not None:
        return "timeout" if verdict.error in ("timeout", "deadline") else "error"
    if verdict.reason in ("drift", "length"):
        return "rejected_drift"
    return "rejected_other"


def refinement_result(outcome: RefinementOutcome) -> str:
    header = outcome.header
    if outcome.merged is not None:
        if outcome.merged.applied:
            return "refined"
        return "fallback" if header.startswith("fallback") else "unchanged"
    return "skipped" if header.startswith("skipped") else "fallback"


@functools.lru_cache(maxsize=256)
def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def annotate_endpoint(url: str) -> None:
    """``server.address``/``server.port`` of the endpoint chosen, on the current span (if recording)."""
    span = trace.get_current_span()
    if span.is_recording():
        host, port = _host_port(url)
        span.set_attribute(A.SERVER_ADDRESS, host)
        span.set_attribute(A.SERVER_PORT, port)


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Message(msgspec.Struct):
    role: str | None = None
    content: Any = None


class _Choice(msgspec.Struct):
    finish_reason: str | None = None
    message: _Message | None = None


class _Completion(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    choices: list[_Choice] = []
    usage: _Usage | None = None


_COMPLETION = msgspec.json.Decoder(_Completion)


def _annotate_completion(span: trace.Span, body: bytes | None, capture: bool) -> None:
    """Response attributes from an OpenAI chat completion body (ignored when it is not one)."""
    if not body:
        return
    try:
        data = _COMPLETION.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    if data.id:
        span.set_attribute(A.RESPONSE_ID, data.id)
    if data.model:
        span.set_attribute(A.RESPONSE_MODEL, data.model)
    reasons = [c.finish_reason for c in data.choices if c.finish_reason]
    if reasons:
        span.set_attribute(A.RESPONSE_FINISH_REASONS, reasons)
    if data.usage is not None:
        if data.usage.prompt_tokens is not None:
            span.set_attribute(A.USAGE_INPUT, data.usage.prompt_tokens)
        if data.usage.completion_tokens is not None:
            span.set_attribute(A.USAGE_OUTPUT, data.usage.completion_tokens)
    if capture:
        out = [
            {"role": c.message.role or "assistant", "parts": [{"type": "text", "content": c.message.content}], "finish_reason": c.finish_reason}
            for c in data.choices
            if c.message is not None and isinstance(c.message.content, str)
        ]
        span.set_attribute(A.OUTPUT_MESSAGES, json.dumps(out, ensure_ascii=False))


def annotate_response(status: int, body: bytes | None) -> None:
    """Status, usage, finish reasons (and output text when captured) on the current CLIENT span."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute(A.HTTP_STATUS, status)
    if status >= 400:
        span.set_attribute(A.ERROR_TYPE, str(status))
        return
    _annotate_completion(span, body, False)  # the stage span records its parsed output itself


def _text_messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}], ensure_ascii=False)


def _error_type(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else type(exc).__name__


def _provider_for(url: str) -> str:
    host = _host_port(url)[0]
    if host.endswith("openai.com"):
        return "openai"
    if host.endswith("openai.azure.com"):
        return "azure.ai.openai"
    return "openai_compatible"


class _NullContext:
    """A shared do-nothing context manager / observer (tracing off)."""

    __slots__ = ()

    def __enter__(self) -> _NullContext:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False


_NULL = _NullContext()


class _MetricsOnlyRefinement:
    """The refinement observer with tracing off: records metrics only (shared, stateless)."""

    __slots__ = ("_telemetry",)

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    def __enter__(self) -> _MetricsOnlyRefinement:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False

    def done(self, outcome: RefinementOutcome, roles: Sequence[Role]) -> None:
        self._telemetry.record_refinement(outcome, roles)


class _RefineTrace:
    """One refinement's ``refine`` span plus the stage/merge spans waiting for the verdicts."""

    __slots__ = ("_telemetry", "span", "_ctx_token", "_var_token", "stages", "merge", "_done")

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry
        self.stages: list[tuple[Role, trace.Span, int]] = []
        self.merge: tuple[trace.Span, int] | None = None
        self._done = False

    def __enter__(self) -> _RefineTrace:
        tracer = self._telemetry.tracer
        assert tracer is not None
        self.span = tracer.start_span("refine", kind=SpanKind.INTERNAL)
        self._ctx_token = otel_context.attach(trace.set_span_in_context(self.span))
        self._var_token = _REFINE.set(self)
        return self

    def done(self, outcome: RefinementOutcome, roles: Sequence[Role]) -> None:
        self._telemetry.record_refinement(outcome, roles)
        span, capture = self.span, self._telemetry.capture
        span.set_attribute(A.REFINEMENT, outcome.header)
        span.set_attribute(A.REFINE_MS, round(outcome.elapsed_ms, 3))
        span.set_attribute(A.STAGES, [r.value for r in roles])
        span.set_attribute(A.CHANGED, outcome.changed)
        skipped = outcome.header.startswith("skipped")
        span.set_attribute(A.SKIPPED, skipped)
        if skipped:
            span.set_attribute(A.SKIP_REASON, outcome.header.partition("reason=")[2] or "unknown")
        if outcome.header.startswith("fallback"):
            span.set_attribute(A.FALLBACK_REASON, outcome.header.partition("reason=")[2] or "unknown")
        merged = outcome.merged
        if merged is not None:
            span.set_attribute(A.APPLIED, [r.value for r in merged.applied])
        if capture:
            span.set_attribute(A.PROMPT_ORIGINAL, outcome.original)
            span.set_attribute(A.PROMPT_REFINED, outcome.refined)
            if outcome.description:
                span.set_attribute(A.DESCRIPTION, outcome.description)
        for role, stage_span, end_ns in self.stages:
            verdict = merged.verdicts.get(role) if merged is not None else None
            if verdict is not None:
                stage_span.set_attribute(A.STAGE_ACCEPTED, verdict.accepted)
                stage_span.set_attribute(A.STAGE_OUTCOME, stage_outcome(verdict))
                if verdict.reason:
                    stage_span.set_attribute(A.STAGE_REASON, verdict.reason)
                if verdict.drift is not None:
                    stage_span.set_attribute(A.STAGE_DRIFT, round(verdict.drift, 4))
                if verdict.length_ratio is not None:
                    stage_span.set_attribute(A.STAGE_LENGTH_RATIO, round(verdict.length_ratio, 4))
                if verdict.error:
                    stage_span.set_attribute(A.ERROR_TYPE, verdict.error)
                    stage_span.set_status(Status(StatusCode.ERROR, verdict.error))
            stage_span.end(end_time=end_ns)
        self.stages.clear()
        if self.merge is not None:
            merge_span, end_ns = self.merge
            if merged is not None:
                merge_span.set_attribute(A.APPLIED, [r.value for r in merged.applied])
                merge_span.set_attribute("mpr.merge.rejected", [r.value for r, v in merged.verdicts.items() if not v.accepted])
            merge_span.end(end_time=end_ns)
            self.merge = None
        self._done = True

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        _REFINE.reset(self._var_token)
        otel_context.detach(self._ctx_token)
        for _, stage_span, end_ns in self.stages:  # an exception skipped done()
            stage_span.end(end_time=end_ns)
        if self.merge is not None:
            self.merge[0].end(end_time=self.merge[1])
        if exc is not None:
            self.span.set_attribute(A.ERROR_TYPE, _error_type(exc))
            self.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        self.span.end()
        return False


class _MergeSpan:
    __slots__ = ("_tracer", "_span", "_token")

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def __enter__(self) -> _MergeSpan:
        self._span = self._tracer.start_span("merge", kind=SpanKind.INTERNAL)
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        otel_context.detach(self._token)
        end_ns = time.time_ns()
        state = _REFINE.get()
        if exc is not None:
            self._span.set_attribute(A.ERROR_TYPE, _error_type(exc))
            self._span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        if state is not None and exc is None:
            state.merge = (self._span, end_ns)
        else:
            self._span.end(end_time=end_ns)
        return False


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
        kind = exc if isinstance(exc, str) else _error_type(exc)
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
            _annotate_completion(span, body, self._capture)
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


class Telemetry:
    """Tracer (None when tracing is off), metrics, and the helpers the request path calls."""

    def __init__(self, config: TelemetryConfig | None = None, provider: Any = None, metrics: Metrics | None = None) -> None:
        self.config = config or TelemetryConfig()
        self.provider = provider
        self.tracer: trace.Tracer | None = provider.get_tracer("mpr-gateway") if provider is not None else None
        self.capture = self.config.capture_prompts
        self.metrics = metrics if metrics is not None else Metrics()
        self._metrics_only = _MetricsOnlyRefinement(self)
        self._stage_static: dict[int, tuple[str, dict[str, Any]]] = {}

    @classmethod
    def from_config(cls, config: TelemetryConfig) -> Telemetry:
        return cls(config, build_tracer_provider(config))

    @property
    def tracing(self) -> bool:
        return self.tracer is not None

    # -- app wiring -----------------------------------------------------------------------
    def litestar_plugins(self) -> list[Any]:
        """Litestar's OpenTelemetry plugin (SERVER span per request) when tracing is on, else nothing."""
        if self.provider is None:
            return []
        from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
        from opentelemetry.metrics import NoOpMeterProvider

        return [
            OpenTelemetryPlugin(
                OpenTelemetryConfig(
                    tracer_provider=self.provider,
                    meter_provider=NoOpMeterProvider(),  # metrics come from /metrics, not OTel meters
                    exclude_spans=["receive", "send"],  # no per-ASGI-message spans
                    exclude=["^/metrics$", "^/health$"],
                )
            )
        ]

    def middleware(self) -> Any:
        from litestar.middleware.base import DefineMiddleware

        from gateway.telemetry.middleware import TelemetryMiddleware

        return DefineMiddleware(TelemetryMiddleware, telemetry=self)

    def shutdown(self) -> None:
        """Flush and stop the exporters (blocking: call from a thread or at exit)."""
        if self.provider is not None:
            try:
                self.provider.force_flush(5000)
                self.provider.shutdown()
            except Exception:  # noqa: BLE001 - never fail shutdown over telemetry
                log.warning("trace exporter shutdown failed", exc_info=True)

    # -- refinement -----------------------------------------------------------------------
    def refinement(self) -> _MetricsOnlyRefinement | _RefineTrace:
        """Context manager around one refinement; call ``.done(outcome, roles)`` inside it."""
        if self.tracer is None:
            return self._metrics_only
        return _RefineTrace(self)

    def merge_span(self) -> _NullContext | _MergeSpan:
        if self.tracer is None:
            return _NULL
        return _MergeSpan(self.tracer)

    def stage(self, backend: Any, text: str, headers: dict[str, str] | None) -> Awaitable[StageResult]:
        """The coroutine running one stage: the backend's own when tracing is off."""
        if self.tracer is None:
            return backend.run(text, headers)
        return self._traced_stage(backend, text, headers)

    def _stage_attrs(self, backend: Any) -> tuple[str, dict[str, Any]]:
        cached = self._stage_static.get(id(backend))
        if cached is None:
            role = getattr(backend, "role", None)
            role_name = getattr(role, "value", str(role))
            adapter = getattr(backend, "config", None)
            model = getattr(adapter, "model", None)
            attrs: dict[str, Any] = {A.OPERATION: A.CHAT, A.STAGE: role_name, A.REQUEST_STREAM: False}
            if model:
                attrs[A.PROVIDER] = A.PROVIDER_VLLM
                attrs[A.REQUEST_MODEL] = model
                params = getattr(adapter, "params", {}) or {}
                for key, name in (("temperature", A.REQUEST_TEMPERATURE), ("top_p", A.REQUEST_TOP_P), ("max_tokens", A.REQUEST_MAX_TOKENS), ("seed", A.REQUEST_SEED)):
                    value = params.get(key)
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        attrs[name] = value
                name = f"chat {model}"
            else:
                attrs[A.PROVIDER] = "mpr.builtin"
                attrs[A.REQUEST_MODEL] = f"builtin-{role_name}"
                name = f"chat builtin-{role_name}"
            cached = self._stage_static[id(backend)] = (name, attrs)
        return cached

    async def _traced_stage(self, backend: Any, text: str, headers: dict[str, str] | None) -> StageResult:
        assert self.tracer is not None
        name, attrs = self._stage_attrs(backend)
        span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
        if self.capture:
            span.set_attribute(A.INPUT_MESSAGES, _text_messages("user", text))
        ctx = trace.set_span_in_context(span)
        carrier = dict(headers) if headers else {}
        propagate.inject(carrier, context=ctx)  # OUR span's context, not the inbound header
        token = otel_context.attach(ctx)
        state = _REFINE.get()
        try:
            result: StageResult = await backend.run(text, carrier)
        except BaseException as exc:
            span.set_attribute(A.ERROR_TYPE, _error_type(exc))
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            end_ns = time.time_ns()
            if state is not None:
                state.stages.append((backend.role, span, end_ns))
            else:
                span.end(end_time=end_ns)
            raise
        finally:
            otel_context.detach(token)
        end_ns = time.time_ns()
        span.set_attribute("mpr.stage.latency_ms", round(result.latency_ms, 3))
        if result.error is not None:
            span.set_attribute(A.ERROR_TYPE, result.error)
            span.set_attribute(A.STAGE_ERROR, result.error)
            span.set_status(Status(StatusCode.ERROR, result.error))
        elif self.capture and result.output is not None:
            span.set_attribute(A.OUTPUT_MESSAGES, _text_messages("assistant", result.output))
        if state is not None:
            state.stages.append((backend.role, span, end_ns))
        else:
            span.end(end_time=end_ns)
        return result

    def record_refinement(self, outcome: RefinementOutcome, roles: Sequence[Role]) -> None:
        """Metrics for one finished refinement (both with and without tracing)."""
        m = self.metrics
        gate = outcome.gate
        if gate is not None:
            m.gate_decision(gate.refine, gate.reason)
        merged = outcome.merged
        if merged is not None:
            for role, verdict in merged.verdicts.items():
                m.stage_outcome(role.value, stage_outcome(verdict))
            for role, result in outcome.results.items():
                m.stage_latency(role.value, result.latency_ms / 1000.0)
        else:
            kind = "skipped" if outcome.header.startswith("skipped") else "error"
            for role in roles:
                m.stage_outcome(role._value_, kind)  # _value_: Enum.value is a Python-level property
        m.refinement(refinement_result(outcome), outcome.elapsed_ms / 1000.0)

    # -- target ---------------------------------------------------------------------------
    def target_call(self, config: TargetConfig, payload: dict[str, Any], stream: bool) -> TargetCall:
        """A :class:`TargetCall` (its CLIENT span started), or the shared no-op one."""
        if self.tracer is None:
            return NULL_CALL
        upstream = config.model_for_upstream
        attrs: dict[str, Any] = {
            A.OPERATION: A.CHAT,
            A.PROVIDER: _provider_for(config.base_urls[0]),
            A.REQUEST_MODEL: upstream,
            A.REQUEST_STREAM: stream,
            A.TARGET: config.name,
        }
        for key, name in (("temperature", A.REQUEST_TEMPERATURE), ("top_p", A.REQUEST_TOP_P), ("seed", A.REQUEST_SEED), ("n", A.REQUEST_CHOICE_COUNT)):
            value = payload.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attrs[name] = value
        max_tokens = payload.get("max_completion_tokens", payload.get("max_tokens"))
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
            attrs[A.REQUEST_MAX_TOKENS] = max_tokens
        if self.capture:
            try:
                attrs[A.INPUT_MESSAGES] = json.dumps(payload.get("messages"), ensure_ascii=False, default=str)
            except (TypeError, ValueError):
                pass
        span = self.tracer.start_span(f"chat {upstream}", kind=SpanKind.CLIENT, attributes=attrs)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return TargetCall(span, carrier, self.capture)


_DEFAULT: Telemetry | None = None


def default_telemetry() -> Telemetry:
    """A tracing-off telemetry with a private registry, for pieces built without an app (tests)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Telemetry(TelemetryConfig(), None, Metrics(process=False))
    return _DEFAULT
