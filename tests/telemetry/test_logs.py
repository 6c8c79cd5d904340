"""JSON access-log lines with request id and trace id; no prompt text."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes
from tests.support.otlp_receiver import OtlpHttpReceiver
from tests.telemetry.conftest import DIRTY, FAST_BATCH, NO_OTEL_ENV, chat, complete_trace, one, refining, trace_of, wait_until


def access_lines(gw: GatewayProcess) -> list[dict]:  # type: ignore[type-arg]
    lines = []
    for line in gw.logs().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "gateway.access":
                lines.append(entry)
    return lines


def test_access_log_with_request_and_trace_ids(traced_gateway: GatewayProcess, fake: FakeOpenAI, http_receiver: OtlpHttpReceiver) -> None:
    http_receiver.clear()
    refining(fake, delay_s=0.0)
    response = chat(traced_gateway, headers={"x-request-id": "req-abc-123"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-abc-123"
    entry = wait_until(lambda: next((e for e in access_lines(traced_gateway) if e.get("request_id") == "req-abc-123"), None))
    assert entry["method"] == "POST" and entry["path"] == "/v1/chat/completions" and entry["status"] == 200
    assert entry["model"] == "test-model" and entry["refinement"] == "describer,paraphraser"
    assert entry["duration_ms"] > 0 and entry["level"] == "info"
    names = ("POST /v1/chat/completions", "refine")
    trace_id = complete_trace(names)(http_receiver.wait_for(complete_trace(names)))
    server = one(trace_of(http_receiver.snapshot(), trace_id), "POST /v1/chat/completions")
    assert entry["trace_id"] == server.trace_id and entry["span_id"] == server.span_id
    assert server.attributes["mpr.request_id"] == "req-abc-123"
    for word in ("captial", "frane", DIRTY):
        assert word not in traced_gateway.logs()


def test_generated_request_ids_and_no_trace_ids_when_tracing_is_off(fake: FakeOpenAI, workdir: Path) -> None:
    with GatewayProcess(routes(fake.base_url), workdir, env=NO_OTEL_ENV) as gw:
        first, second = chat(gw, content="hello there"), chat(gw, content="hello there")
        ids = {first.headers["x-request-id"], second.headers["x-request-id"]}
        assert len(ids) == 2
        entries = wait_until(lambda: [e for e in access_lines(gw) if e.get("request_id") in ids] if len(
            [e for e in access_lines(gw) if e.get("request_id") in ids]) == 2 else None)
        assert all("trace_id" not in e for e in entries)
        assert all(e["refinement"] and e["model"] == "test-model" for e in entries)


def test_access_log_can_be_switched_off(fake: FakeOpenAI, workdir: Path) -> None:
    with GatewayProcess(routes(fake.base_url, telemetry={"access_log": False}), workdir, env={**NO_OTEL_ENV, **FAST_BATCH}) as gw:
        assert chat(gw, content="hello there").status_code == 200
        logs = gw.logs()
    assert "gateway.access" not in logs
