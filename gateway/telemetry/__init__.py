"""Observability: OpenTelemetry traces (GenAI conventions), Prometheus metrics, request-scoped logs.

* :class:`Telemetry` (:mod:`.facade`) - built once per app from ``telemetry:`` in the config (and
  ``OTEL_*``); holds the tracer (None when tracing is off), the :class:`Metrics`, the audit log
  and the span helpers.
* :mod:`.refine_spans` - the ``refine``/stage/``merge`` spans; :mod:`.target_spans` - the target
  call's span; :mod:`.attributes` - span attribute helpers.
* :mod:`.recording` - refinement metrics from outcomes; :mod:`.audit` - the sampled audit log.
* :func:`metrics_route` - ``GET /metrics`` (Prometheus text).
* :mod:`gateway.telemetry.middleware` - request id, request metrics, TTFB, access log.
* :mod:`gateway.telemetry.logcontext` - ``request_id``/``trace_id`` on every log record.
"""

from __future__ import annotations

from gateway.telemetry.attributes import annotate_endpoint, annotate_response
from gateway.telemetry.facade import Telemetry, default_telemetry
from gateway.telemetry.metrics import CONTENT_TYPE, Metrics
from gateway.telemetry.recording import description_outcome, refinement_result, stage_outcome
from gateway.telemetry.route import metrics_route
from gateway.telemetry.target_spans import NULL_CALL, TargetCall


__all__ = [
    "CONTENT_TYPE",
    "Metrics",
    "NULL_CALL",
    "TargetCall",
    "Telemetry",
    "annotate_endpoint",
    "annotate_response",
    "default_telemetry",
    "description_outcome",
    "metrics_route",
    "refinement_result",
    "stage_outcome",
]
