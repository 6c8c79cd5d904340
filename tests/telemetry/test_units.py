"""Exporter selection, outcome classification, and the tracing-off fast path (in process)."""

from __future__ import annotations

import pytest

from gateway.config.models import Role, TelemetryConfig
from gateway.refinement.results import StageVerdict
from gateway.telemetry import NULL_CALL, Telemetry, stage_outcome
from gateway.telemetry.tracing import build_tracer_provider, http_traces_url, resolve_exporters


@pytest.mark.parametrize(
    ("config", "env", "expected"),
    [
        ({}, {}, ()),
        ({}, {"OTEL_TRACES_EXPORTER": "none"}, ()),
        ({}, {"OTEL_TRACES_EXPORTER": "otlp"}, ("otlp_http",)),
        ({}, {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, ("otlp_grpc",)),
        ({}, {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, ("otlp_http",)),
        ({}, {"OTEL_TRACES_EXPORTER": "otlp,console"}, ("otlp_http", "console")),
        ({}, {"OTEL_TRACES_EXPORTER": "zipkin"}, ()),
        ({"traces_exporter": "otlp_grpc"}, {"OTEL_TRACES_EXPORTER": "console"}, ("otlp_grpc",)),
        ({"traces_exporter": "console"}, {}, ("console",)),
    ],
)
def test_exporter_resolution(config: dict, env: dict, expected: tuple) -> None:  # type: ignore[type-arg]
    assert resolve_exporters(TelemetryConfig(**config), env) == expected


def test_http_endpoint_gets_the_traces_path() -> None:
    assert http_traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert http_traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert http_traces_url("http://collector:4318/custom/traces") == "http://collector:4318/custom/traces"


def test_no_provider_when_off() -> None:
    assert build_tracer_provider(TelemetryConfig(), {}) is None


def _verdict(accepted: bool = False, reason: str | None = None, error: str | None = None) -> StageVerdict:
    return StageVerdict(Role.CLEANER, "x", accepted, reason=reason, error=error)


@pytest.mark.parametrize(
    ("verdict", "outcome"),
    [
        (_verdict(True), "accepted"),
        (_verdict(reason="drift"), "rejected_drift"),
        (_verdict(reason="length"), "rejected_drift"),
        (_verdict(reason="echo"), "rejected_other"),
        (_verdict(reason="empty"), "rejected_other"),
        (_verdict(reason="error", error="timeout"), "timeout"),
        (_verdict(reason="error", error="deadline"), "timeout"),
        (_verdict(reason="error", error="http_500"), "error"),
        (_verdict(reason="error", error="malformed"), "error"),
    ],
)
def test_stage_outcome(verdict: StageVerdict, outcome: str) -> None:
    assert stage_outcome(verdict) == outcome


class _Backend:
    role = Role.CLEANER

    async def run(self, text: str, headers: dict[str, str] | None = None) -> None:
        return None


def test_tracing_off_returns_shared_no_op_objects() -> None:
    from gateway.config.models import TargetConfig

    tel = Telemetry(TelemetryConfig())
    assert not tel.tracing and tel.litestar_plugins() == []
    target = TargetConfig(name="m", endpoints=["http://127.0.0.1:1/v1"])  # type: ignore[list-item]
    assert tel.target_call(target, {}, False) is NULL_CALL and NULL_CALL.headers is None
    assert tel.refinement() is tel.refinement()
    assert tel.merge_span() is tel.merge_span()
    backend = _Backend()
    coro = tel.stage(backend, "text", None)
    assert coro.cr_code is _Backend.run.__code__  # the backend's own coroutine, no wrapper
    coro.close()
