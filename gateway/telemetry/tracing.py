"""Tracer provider and span exporters, from ``telemetry:`` in the config and the ``OTEL_*`` variables.

Precedence: ``telemetry.traces_exporter`` (``otlp_http``, ``otlp_grpc``, ``console``) wins; when it
is ``none`` (the default) the standard ``OTEL_TRACES_EXPORTER`` decides (``otlp``, ``console``,
``none``; a comma-separated list is allowed), with ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` /
``OTEL_EXPORTER_OTLP_PROTOCOL`` choosing ``http/protobuf`` (the default) or ``grpc``. The endpoint
comes from ``telemetry.otlp_endpoint`` or, when that is unset, from the exporters' own reading of
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``. Batch-processor timing
(``OTEL_BSP_SCHEDULE_DELAY`` ...), the sampler (``OTEL_TRACES_SAMPLER``) and resource attributes
(``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME``) are read by the SDK as usual.

With no exporter the gateway builds no provider at all: spans come from the API's no-op tracer
and the ASGI instrumentation is not installed (near-zero cost).

The provider is never installed as the global one: the app passes it explicitly, so several apps
(tests) can live in one process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from gateway.config.models import TelemetryConfig

log = logging.getLogger("gateway.telemetry")

_DEFAULT_SERVICE = "mpr-gateway"
EXPORTERS = ("otlp_http", "otlp_grpc", "console")


def resolve_exporters(config: TelemetryConfig, env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The exporters to build: a tuple of ``otlp_http``/``otlp_grpc``/``console`` (empty: tracing off)."""
    if config.traces_exporter != "none":
        return (config.traces_exporter,)
    names: list[str] = []
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip().lower()
    for raw in (env.get("OTEL_TRACES_EXPORTER") or "none").split(","):
        name = raw.strip().lower()
        if name in ("", "none"):
            continue
        if name == "otlp":
            names.append("otlp_grpc" if protocol == "grpc" else "otlp_http")
        elif name in ("console", "otlp_http", "otlp_grpc"):
            names.append(name)
        elif name in ("otlp_proto_http", "otlp_proto_grpc"):
            names.append(name.replace("_proto", ""))
        else:
            log.warning("OTEL_TRACES_EXPORTER=%s is not supported here; ignored", name)
    return tuple(dict.fromkeys(names))


def http_traces_url(endpoint: str) -> str:
    """A configured OTLP/HTTP endpoint as the traces URL (``/v1/traces`` added to a bare base)."""
    parts = urlsplit(endpoint)
    if parts.path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def _exporter(name: str, config: TelemetryConfig):  # type: ignore[no-untyped-def]
    if name == "otlp_http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter(endpoint=http_traces_url(config.otlp_endpoint)) if config.otlp_endpoint else HttpExporter()
    if name == "otlp_grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        if not config.otlp_endpoint:
            return GrpcExporter()
        endpoint = config.otlp_endpoint
        insecure = endpoint.startswith("http://") or "://" not in endpoint
        return GrpcExporter(endpoint=endpoint, insecure=insecure)
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(service_name=config.service_name)
    raise ValueError(f"unknown traces exporter {name!r}")


def build_tracer_provider(config: TelemetryConfig, env: Mapping[str, str] = os.environ):  # type: ignore[no-untyped-def]
    """A configured SDK ``TracerProvider``, or None when no exporter is configured."""
    names = resolve_exporters(config, env)
    if not names:
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    service = config.service_name
    if service == _DEFAULT_SERVICE and env.get("OTEL_SERVICE_NAME"):
        service = env["OTEL_SERVICE_NAME"]
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service, SERVICE_VERSION: _version()}))
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, config)))
    log.info(
        "tracing on: exporter(s) %s, endpoint %s, prompt capture %s",
        ",".join(names),
        config.otlp_endpoint or "from OTEL_* / default",
        "on" if config.capture_prompts else "off",
    )
    return provider


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("mpr-gateway")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "0"
