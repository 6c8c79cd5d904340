"""Spans of the refinement step: ``refine`` (INTERNAL), one ``chat {lora}`` CLIENT span per stage,
and ``merge`` (INTERNAL); plus the metrics-only observer used when tracing is off.

Stage spans are ended after the merge (with the time the call actually finished as their end
time) so that the merge's verdict - accepted, drift, reason - lands on the stage's own span.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.telemetry import genai as A
from gateway.telemetry.attributes import error_type, text_messages
from gateway.telemetry.recording import record_refinement, stage_outcome
from gateway.tenants.meter import policy_capture

if TYPE_CHECKING:
    from gateway.config.models import Role
    from gateway.refinement.results import RefinementOutcome
    from gateway.refinement.results import StageResult
    from gateway.telemetry.facade import Telemetry

_REFINE: ContextVar[RefineTrace | None] = ContextVar("mpr_refine_trace", default=None)
_STAGE_PARAMS = (
    ("temperature", A.REQUEST_TEMPERATURE),
    ("top_p", A.REQUEST_TOP_P),
    ("max_tokens", A.REQUEST_MAX_TOKENS),
    ("seed", A.REQUEST_SEED),
)


class NullContext:
    """A shared do-nothing context manager (tracing off)."""

    __slots__ = ()

    def __enter__(self) -> NullContext:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False


NULL = NullContext()


class MetricsOnlyRefinement:
    """The refinement observer with tracing off: records metrics only (shared, stateless)."""

    __slots__ = ("_telemetry",)

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    def __enter__(self) -> MetricsOnlyRefinement:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False

    def done(self, outcome: RefinementOutcome, roles: Sequence[Role], mode: str = "apply") -> None:
        record_refinement(self._telemetry.metrics, outcome, roles, mode)


class RefineTrace:
    """One refinement's ``refine`` span plus the stage/merge spans waiting for the verdicts."""

    __slots__ = ("_telemetry", "_started", "span", "_ctx_token", "_var_token", "stages", "merge", "_done")

    def __init__(self, telemetry: Telemetry, started: float | None = None) -> None:
        self._telemetry = telemetry
        self._started = started  # perf_counter() when the refinement began (the gate ran before the span opened)
        self.stages: list[tuple[Role, trace.Span, int]] = []
        self.merge: tuple[trace.Span, int] | None = None
        self._done = False

    def __enter__(self) -> RefineTrace:
        tracer = self._telemetry.tracer
        assert tracer is not None
        start_time = None
        if self._started is not None:  # the span covers the gate too
            start_time = time.time_ns() - int((time.perf_counter() - self._started) * 1e9)
        self.span = tracer.start_span("refine", kind=SpanKind.INTERNAL, start_time=start_time)
        self._ctx_token = otel_context.attach(trace.set_span_in_context(self.span))
        self._var_token = _REFINE.set(self)
        return self

    def done(self, outcome: RefinementOutcome, roles: Sequence[Role], mode: str = "apply") -> None:
        record_refinement(self._telemetry.metrics, outcome, roles, mode)
        span, capture = self.span, self._telemetry.capture and policy_capture()  # a key may forbid capture
        span.set_attribute(A.REFINEMENT, outcome.header)
        span.set_attribute(A.MODE, mode)
        span.set_attribute(A.REFINE_MS, round(outcome.elapsed_ms, 3))
        span.set_attribute(A.CACHE, outcome.cache)
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
            self.span.set_attribute(A.ERROR_TYPE, error_type(exc))
            self.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        self.span.end()
        return False


class MergeSpan:
    """The ``merge`` span; handed to the enclosing :class:`RefineTrace` to end after the verdicts."""

    __slots__ = ("_tracer", "_span", "_token")

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def __enter__(self) -> MergeSpan:
        self._span = self._tracer.start_span("merge", kind=SpanKind.INTERNAL)
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        otel_context.detach(self._token)
        end_ns = time.time_ns()
        state = _REFINE.get()
        if exc is not None:
            self._span.set_attribute(A.ERROR_TYPE, error_type(exc))
            self._span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        if state is not None and exc is None:
            state.merge = (self._span, end_ns)
        else:
            self._span.end(end_time=end_ns)
        return False


def stage_attributes(backend: Any) -> tuple[str, dict[str, Any]]:
    """A stage span's name and static attributes, from its backend (vLLM adapter or built-in)."""
    role = getattr(backend, "role", None)
    role_name = getattr(role, "value", str(role))
    adapter = getattr(backend, "config", None)
    model = getattr(adapter, "model", None)
    attrs: dict[str, Any] = {A.OPERATION: A.CHAT, A.STAGE: role_name, A.REQUEST_STREAM: False}
    if model:
        attrs[A.PROVIDER] = A.PROVIDER_VLLM
        attrs[A.REQUEST_MODEL] = model
        params = getattr(adapter, "params", {}) or {}
        for key, name in _STAGE_PARAMS:
            value = params.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attrs[name] = value
        return f"chat {model}", attrs
    attrs[A.PROVIDER] = "mpr.builtin"
    attrs[A.REQUEST_MODEL] = f"builtin-{role_name}"
    return f"chat builtin-{role_name}", attrs


async def traced_stage(
    tracer: trace.Tracer, capture: bool, backend: Any, text: str, headers: dict[str, str] | None, static: tuple[str, dict[str, Any]]
) -> StageResult:
    """Run ``backend.run`` inside its CLIENT span; the span's context goes out in ``traceparent``."""
    name, attrs = static
    span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
    if capture:
        span.set_attribute(A.INPUT_MESSAGES, text_messages("user", text))
    ctx = trace.set_span_in_context(span)
    carrier = dict(headers) if headers else {}
    propagate.inject(carrier, context=ctx)  # OUR span's context, not the inbound header
    token = otel_context.attach(ctx)
    state = _REFINE.get()
    try:
        result: StageResult = await backend.run(text, carrier)
    except BaseException as exc:
        span.set_attribute(A.ERROR_TYPE, error_type(exc))
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
    elif capture and result.output is not None:
        span.set_attribute(A.OUTPUT_MESSAGES, text_messages("assistant", result.output))
    if state is not None:
        state.stages.append((backend.role, span, end_ns))
    else:
        span.end(end_time=end_ns)
    return result
