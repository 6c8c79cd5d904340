"""Per-request ASGI middleware: request id, in-flight gauge, request metrics, TTFB (and the
refinement's share of it), access log.

The request id goes back in `x-request-id` unless the response already carries one (a target's
own id, relayed: the OpenAI SDK surfaces it as `_request_id`).

Runs inside Litestar's route stack (after routing, so the route template is known) and inside
the OpenTelemetry SERVER span when tracing is on (it renames that span ``{method} {route}``).
The chat handler puts the request's model in ``scope["mpr_model"]`` (a configured target name,
so label values stay bounded) and, in apply mode, the refinement's wall time in
``scope["mpr_refine_s"]``. A refinement recorded for ``/admin/status`` during the request is
settled with the response's status at its end (:meth:`RecentRefinements.settle`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from gateway.logs import AccessLog
from gateway.telemetry import genai as A
from gateway.telemetry.logcontext import REQUEST_ID, accept_request_id
from gateway.telemetry.recent import PENDING

if TYPE_CHECKING:
    from gateway.telemetry.facade import Telemetry

access_log = AccessLog("gateway.access")

MODEL_KEY = "mpr_model"
REFINE_KEY = "mpr_refine_s"  # apply-mode refinement wall time (s), set by the chat handler
_REQUEST_ID = b"x-request-id"
_REFINEMENT = b"x-mpr-refinement"
_CONTENT_TYPE = b"content-type"
_SSE = b"text/event-stream"


class _Response:
    __slots__ = ("status", "refinement", "stream", "first_byte", "refine_s")

    def __init__(self) -> None:
        self.status = 0
        self.refinement: bytes | None = None
        self.stream = False
        self.first_byte = False
        self.refine_s: float | None = None


class TelemetryMiddleware:
    """See the module docstring. Plain ASGI (no ``AbstractMiddleware`` exclusion checks)."""

    __slots__ = ("app", "metrics", "tracing", "access_enabled", "recent")

    def __init__(self, app: Any, telemetry: Telemetry) -> None:
        self.app = app
        self.recent = telemetry.recent
        self.metrics = telemetry.metrics
        self.tracing = telemetry.tracing
        self.access_enabled = telemetry.config.access_log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = scope.get("path_template") or "unmatched"
        inbound_id = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID:
                inbound_id = value
                break
        request_id = accept_request_id(inbound_id)
        token = REQUEST_ID.set(request_id)
        recorded: list[Any] = []  # this request's refinement entries (gateway.telemetry.recent)
        pending = PENDING.set(recorded)
        gauge = self.metrics.in_flight_for(route)
        gauge.inc()
        info = _Response()
        id_header = (_REQUEST_ID, request_id.encode())
        metrics = self.metrics
        span = None
        if self.tracing:  # the SERVER span ends with the last body message: annotate it early
            current = trace.get_current_span()
            if current.is_recording():
                span = current
                span.update_name(f"{scope.get('method', '')} {route}")
                span.set_attribute(A.HTTP_ROUTE, route)
                span.set_attribute("mpr.request_id", request_id)

        async def send_wrapper(message: Any) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                info.status = message["status"]
                headers = message.get("headers") or []
                has_id = False
                for name, value in headers:
                    if name == _REFINEMENT:
                        info.refinement = value
                    elif name == _CONTENT_TYPE and value.startswith(_SSE):
                        info.stream = True
                    elif name == _REQUEST_ID:
                        has_id = True  # the target's own id is relayed: keep it, add none
                if not has_id:
                    message["headers"] = [*headers, id_header]
                info.refine_s = scope.get(REFINE_KEY)
                if span is not None:
                    if info.refinement is not None:
                        span.set_attribute(A.REFINEMENT, info.refinement.decode("latin-1"))
                    model = scope.get(MODEL_KEY)
                    if model:
                        span.set_attribute(A.TARGET, model)
            elif (info.stream or info.refine_s is not None) and not info.first_byte and kind == "http.response.body" and message.get("body"):
                info.first_byte = True
                ttfb = time.perf_counter() - started
                label = scope.get(MODEL_KEY) or "-"
                if info.stream:
                    metrics.observe_ttfb(label, ttfb)
                if info.refine_s is not None:
                    metrics.refinement_share(label, info.refine_s / ttfb)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            gauge.dec()
            elapsed = time.perf_counter() - started
            model = scope.get(MODEL_KEY) or "-"
            status = info.status or 500
            metrics.observe_request(route, model, status, elapsed)
            if recorded:
                self.recent.settle(recorded, status)
            PENDING.reset(pending)
            if self.access_enabled and access_log.enabled:
                method = scope.get("method", "")
                path = scope.get("path", "")
                fields: dict[str, Any] = {
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "model": model,
                    "refinement": info.refinement.decode("latin-1") if info.refinement is not None else None,
                    "stream": info.stream,
                    "request_id": request_id,
                }
                if span is not None:
                    ctx = span.get_span_context()
                    fields["trace_id"] = format(ctx.trace_id, "032x")
                    fields["span_id"] = format(ctx.span_id, "016x")
                access_log.write(f"{method} {path} {status} {elapsed * 1000:.1f}ms", fields)
            REQUEST_ID.reset(token)
