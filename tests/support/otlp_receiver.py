"""A real OTLP trace receiver for tests: HTTP/protobuf (``POST /v1/traces``) and gRPC (TraceService).

Decodes ``ExportTraceServiceRequest`` with ``opentelemetry-proto`` into :class:`ReceivedSpan`
values (ids as lowercase hex, attributes as plain Python values). Both servers run in threads on
loopback::

    with OtlpHttpReceiver() as rx:           # rx.endpoint = "http://127.0.0.1:PORT" (base URL)
        ...                                  # rx.traces_url = rx.endpoint + "/v1/traces"
        spans = rx.wait_for(lambda s: any(x.name == "refine" for x in s))

    with OtlpGrpcReceiver() as rx:           # rx.endpoint = "http://127.0.0.1:PORT"
        ...
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def any_value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def attributes(kvs: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int
    service: str
    scope: str
    resource: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)

    def is_context_of(self, traceparent: str | None) -> bool:
        """True when a W3C ``traceparent`` names this span (same trace and span id, sampled).

        The flags byte may also carry the level-2 ``random`` bit (``03``), so only bit 0 is compared.
        """
        if not traceparent:
            return False
        parts = traceparent.strip().split("-")
        return (
            len(parts) == 4
            and parts[0] == "00"
            and parts[1] == self.trace_id
            and parts[2] == self.span_id
            and int(parts[3], 16) & 1 == 1
        )


def decode_request(data: bytes) -> list[ReceivedSpan]:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.ParseFromString(data)
    out: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        service = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=KINDS.get(span.kind, str(span.kind)),
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes=attributes(span.attributes),
                        status_code=span.status.code,
                        service=service,
                        scope=scope_spans.scope.name,
                        resource=resource,
                        events=[e.name for e in span.events],
                    )
                )
    return out


class _Store:
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._cond = threading.Condition()

    def add(self, spans: list[ReceivedSpan]) -> None:
        with self._cond:
            self.spans.extend(spans)
            self.requests += 1
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self.spans.clear()

    def snapshot(self) -> list[ReceivedSpan]:
        with self._cond:
            return list(self.spans)

    def wait_for(self, predicate: Callable[[list[ReceivedSpan]], Any], timeout: float = 30.0) -> list[ReceivedSpan]:
        """Block until ``predicate(spans)`` is truthy; returns the spans (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                spans = list(self.spans)
                if predicate(spans):
                    return spans
                left = deadline - time.monotonic()
                if left <= 0:
                    names = sorted({(s.service, s.name) for s in spans})
                    raise AssertionError(f"OTLP receiver: condition not met in {timeout}s; got {len(spans)} spans: {names}")
                self._cond.wait(min(left, 0.1))

    def by_name(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.snapshot() if s.name == name]


class OtlpHttpReceiver(_Store):
    """OTLP/HTTP protobuf receiver on loopback (``/v1/traces``; gzip/deflate bodies accepted)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(length)
                encoding = (self.headers.get("content-encoding") or "").lower()
                if encoding == "gzip":
                    data = gzip.decompress(data)
                elif encoding == "deflate":
                    data = zlib.decompress(data)
                if self.path.rstrip("/") != "/v1/traces":
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                try:
                    spans = decode_request(data)
                except Exception:  # noqa: BLE001 - answer 400 like a collector would
                    self.send_response(400)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                store.add(spans)
                body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """Base URL (what ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_url(self) -> str:
        return self.endpoint + "/v1/traces"

    def start(self) -> OtlpHttpReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> OtlpHttpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class OtlpGrpcReceiver(_Store):
    """OTLP/gRPC receiver on loopback implementing ``TraceService/Export``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        from concurrent.futures import ThreadPoolExecutor

        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        store = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802
                store.add(decode_request(request.SerializeToString()))
                return trace_service_pb2.ExportTraceServiceResponse()

        self._server = grpc.server(ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self._server)
        self.port = self._server.add_insecure_port(f"{host}:{port}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpGrpcReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=1).wait(5)

    def __enter__(self) -> OtlpGrpcReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_span_id == parent.span_id and s.trace_id == parent.trace_id]


def render_tree(spans: list[ReceivedSpan], root: ReceivedSpan, keys: Iterable[str] = (), indent: str = "") -> str:
    """A text tree of ``root`` and its descendants (start-ordered), with selected attributes."""
    keys = tuple(keys)
    start0 = root.start_ns
    lines: list[str] = []

    def walk(span: ReceivedSpan, depth: int) -> None:
        shown = {k: span.attributes[k] for k in keys if k in span.attributes}
        offset = (span.start_ns - start0) / 1e6
        length = (span.end_ns - span.start_ns) / 1e6
        extra = " ".join(f"{k}={v!r}" for k, v in shown.items())
        lines.append(f"{indent}{'  ' * depth}{span.name} [{span.kind}, {span.service}] +{offset:.1f}ms {length:.1f}ms {extra}".rstrip())
        for child in sorted(children(spans, span), key=lambda s: s.start_ns):
            walk(child, depth + 1)

    walk(root, 0)
    return "\n".join(lines)
