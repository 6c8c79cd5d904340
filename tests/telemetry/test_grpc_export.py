"""OTLP/gRPC export into a real ``TraceService`` server inside the test (config and OTEL_* routes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes
from tests.support.otlp_receiver import OtlpGrpcReceiver
from tests.telemetry.conftest import FAST_BATCH, ROLES, chat, complete_trace, header, one, refining, trace_of

NAMES = ("POST /v1/chat/completions", "refine", "merge", "chat target-model", *(f"chat {r}" for r in ROLES))


@pytest.mark.parametrize(
    ("telemetry", "env"),
    [
        pytest.param(lambda ep: {"traces_exporter": "otlp_grpc", "otlp_endpoint": ep}, lambda ep: {}, id="config"),
        pytest.param(
            lambda ep: {},
            lambda ep: {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": ep},
            id="otel-env",
        ),
    ],
)
def test_span_tree_over_grpc(telemetry, env, fake: FakeOpenAI, grpc_receiver: OtlpGrpcReceiver, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    grpc_receiver.clear()
    refining(fake, delay_s=0.1)
    config = routes(fake.base_url, fake.base_url, telemetry=telemetry(grpc_receiver.endpoint))
    with GatewayProcess(config, workdir, env={**FAST_BATCH, **env(grpc_receiver.endpoint)}) as gw:
        assert chat(gw).status_code == 200
        spans = grpc_receiver.wait_for(complete_trace(NAMES), timeout=30)
    trace_id = complete_trace(NAMES)(spans)
    assert trace_id
    spans = trace_of(spans, trace_id)
    server, refine = one(spans, NAMES[0]), one(spans, "refine")
    assert refine.parent_span_id == server.span_id
    stages = [one(spans, f"chat {r}") for r in ROLES]
    assert all(s.parent_span_id == refine.span_id for s in stages)
    assert max(s.start_ns for s in stages) < min(s.end_ns for s in stages)
    for stage in stages:
        sent = [header(r.headers, "traceparent") for r in fake.requests_for(stage.attributes["mpr.stage"])]
        assert len(sent) == 1 and stage.is_context_of(sent[0])
