"""Observability: OpenTelemetry traces (GenAI conventions), Prometheus metrics, request-scoped logs.

* :class:`Telemetry` - built once per app from ``telemetry:`` in the config (and ``OTEL_*``);
  holds the tracer (None when tracing is off), the :class:`Metrics` and the span helpers.
* :func:`metrics_route` - ``GET /metrics`` (Prometheus text).
* :mod:`gateway.telemetry.middleware` - request id, request metrics, TTFB, access log.
* :mod:`gateway.telemetry.logcontext` - ``request_id``/``trace_id`` on every log record.
"""

from __future__ import annotations

from gateway.telemetry.core import (
    NULL_CALL,
    TargetCall,
    Telemetry,
    annotate_endpoint,
    annotate_response,
    default_telemetry,
    stage_outcome,
)
from gateway.telemetry.metrics import CONTENT_TYPE, Metrics
from gateway.telemetry.route import metrics_route


__all__ = [
    "CONTENT_TYPE",
    "Metrics",
    "NULL_CALL",
    "TargetCall",
    "Telemetry",
    "annotate_endpoint",
    "annotate_response",
    "default_telemetry",
    "metrics_route",
    "stage_outcome",
]
