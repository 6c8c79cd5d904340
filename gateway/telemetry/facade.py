"""The :class:`Telemetry` facade: tracer (or none), metrics, audit log, and the helpers the
request path calls.

Span tree of one refined chat completion::

    POST /v1/chat/completions            SERVER   (Litestar's OpenTelemetry plugin; inbound traceparent)
    ├── refine                           INTERNAL (mpr.refinement, mpr.mode, mpr.skipped, mpr.fallback_reason ...)
    │   ├── chat {cleaner lora}          CLIENT   (gen_ai.*, mpr.stage.accepted/drift/reason)
    │   ├── chat {describer lora}        CLIENT   (the three overlap in time)
    │   ├── chat {paraphraser lora}      CLIENT
    │   └── merge                        INTERNAL
    └── chat {upstream model}            CLIENT   (gen_ai.*, usage, finish reasons, error.type)

Each CLIENT span's own context goes out in ``traceparent`` (never the inbound header), so vLLM's
spans nest under the stage span. With tracing off every helper returns a shared no-op object or
the plain coroutine: no span objects, no header dicts; metrics are still recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from gateway.config.models import TelemetryConfig
from gateway.telemetry.audit import AuditLog
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.recent import RecentRefinements
from gateway.telemetry.recording import record_refinement, record_unstaged
from gateway.telemetry.refine_spans import NULL, MergeSpan, MetricsOnlyRefinement, NullContext, RefineTrace, stage_attributes, traced_stage
from gateway.telemetry.target_spans import NULL_CALL, TargetCall, start_target_call
from gateway.telemetry.tracing import build_tracer_provider
from gateway.tenants.meter import policy_capture

if TYPE_CHECKING:
    from gateway.config.models import Role, TargetConfig
    from gateway.refinement.results import RefinementOutcome
    from gateway.refinement.results import StageResult

log = logging.getLogger("gateway.telemetry")


class Telemetry:
    """Tracer (None when tracing is off), metrics, audit log, and the helpers the request path calls."""

    def __init__(self, config: TelemetryConfig | None = None, provider: Any = None, metrics: Metrics | None = None) -> None:
        self.config = config or TelemetryConfig()
        self.provider = provider
        self.tracer: trace.Tracer | None = provider.get_tracer("mpr-gateway") if provider is not None else None
        self.capture = self.config.capture_prompts
        self.metrics = metrics if metrics is not None else Metrics()
        self.audit: AuditLog | None = None
        if self.config.audit_sample_rate > 0:
            self.audit = AuditLog(self.config.audit_sample_rate, self.config.audit_path)
        self.recent = RecentRefinements()  # the last refinements' verdicts, for GET /admin/status
        self._metrics_only = MetricsOnlyRefinement(self)
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
        """Flush and stop the exporters and the audit log (blocking: call from a thread or at exit)."""
        if self.audit is not None:
            self.audit.close()
        if self.provider is not None:
            try:
                self.provider.force_flush(5000)
                self.provider.shutdown()
            except Exception:  # noqa: BLE001 - never fail shutdown over telemetry
                log.warning("trace exporter shutdown failed", exc_info=True)

    def forget_stages(self) -> None:
        """Drop the cached span attributes of stage backends (a reload built new ones)."""
        self._stage_static.clear()

    # -- refinement -----------------------------------------------------------------------
    def refinement(self, started: float | None = None) -> MetricsOnlyRefinement | RefineTrace:
        """Context manager around one refinement; call ``.done(outcome, roles, mode)`` inside it.
        ``started`` (a ``time.perf_counter()`` reading): when the refinement began, if before now."""
        if self.tracer is None:
            return self._metrics_only
        return RefineTrace(self, started)

    def settled(self, outcome: RefinementOutcome, roles: Sequence[Role], mode: str, started: float) -> None:
        """A refinement settled without a stage (the skip path): its metrics, and with tracing its
        ``refine`` span (from ``started``, a ``time.perf_counter()`` reading)."""
        if self.tracer is None:
            record_unstaged(self.metrics, outcome, roles)  # what the metrics-only observer records for it, minus the context manager
            return
        with RefineTrace(self, started) as observed:
            observed.done(outcome, roles, mode)

    def merge_span(self) -> NullContext | MergeSpan:
        if self.tracer is None:
            return NULL
        return MergeSpan(self.tracer)

    def stage(self, backend: Any, text: str, headers: dict[str, str] | None) -> Awaitable[StageResult]:
        """The coroutine running one stage: the backend's own when tracing is off."""
        if self.tracer is None:
            return backend.run(text, headers)
        static = self._stage_static.get(id(backend))
        if static is None:
            static = self._stage_static[id(backend)] = stage_attributes(backend)
        return traced_stage(self.tracer, self.capture and policy_capture(), backend, text, headers, static)  # a key may forbid capture

    def record_refinement(self, outcome: RefinementOutcome, roles: Sequence[Role], mode: str = "apply") -> None:
        """Metrics for one finished refinement (both with and without tracing)."""
        record_refinement(self.metrics, outcome, roles, mode)

    # -- target ---------------------------------------------------------------------------
    def target_call(self, config: TargetConfig, payload: dict[str, Any], stream: bool, attempt: int = 1) -> TargetCall:
        """A :class:`TargetCall` (its CLIENT span started; ``attempt`` is the try number across
        retries and fallbacks), or the shared no-op one."""
        if self.tracer is None:
            return NULL_CALL
        return start_target_call(self.tracer, config, payload, stream, self.capture and policy_capture(), attempt)


_DEFAULT: Telemetry | None = None


def default_telemetry() -> Telemetry:
    """A tracing-off telemetry with a private registry, for pieces built without an app (tests)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Telemetry(TelemetryConfig(), None, Metrics(process=False))
    return _DEFAULT
