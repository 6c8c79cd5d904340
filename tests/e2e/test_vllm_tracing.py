"""vLLM's ``llm_request`` span arrives as a child of the gateway's stage span (real vLLM, CPU).

The session's vLLM worker was launched with ``--otlp-traces-endpoint`` pointing at the session's
OTLP receiver (``otlp_receiver`` / ``vllm_otlp_endpoint`` in conftest). This module starts its own
gateway with tracing to the same receiver, sends one prompt the skip gate refines, and checks that
each stage's CLIENT span has vLLM's span under it, in the same trace.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.gateway_proc import GatewayProcess, e2e_routes
from tests.e2e.worker_proc import ROLES, WorkerProcess
from tests.support.fake_openai import FakeOpenAI
from tests.support.otlp_receiver import OtlpHttpReceiver, ReceivedSpan, render_tree

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]

BASE_MODEL = "mpr-tiny-llama"  # served name written by `mpr-worker make-test-model`
TYPO_PROMPT = "Waht is teh capitol of Frnace and how big is it?"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def traced_gateway(vllm_worker: WorkerProcess, otlp_receiver: OtlpHttpReceiver,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, FakeOpenAI]]:
    with FakeOpenAI() as echo:
        routes = e2e_routes(vllm_worker.base_url, BASE_MODEL, echo.base_url)
        routes["telemetry"] = {"traces_exporter": "otlp_http", "otlp_endpoint": otlp_receiver.endpoint}
        proc = GatewayProcess(routes, tmp_path_factory.mktemp("gateway-traced"), _free_port())
        try:
            proc.start()
            yield proc, echo
        finally:
            proc.stop()  # flushes the gateway's batched spans


def test_vllm_span_is_a_child_of_the_stage_span(traced_gateway: tuple[GatewayProcess, FakeOpenAI],
                                                 otlp_receiver: OtlpHttpReceiver) -> None:
    gateway, echo = traced_gateway
    response = httpx.post(gateway.url + "/v1/chat/completions", timeout=300,
                          json={"model": "echo", "messages": [{"role": "user", "content": TYPO_PROMPT}]})
    assert response.status_code == 200, response.text
    sent = {r.body["model"]: r for r in echo.requests}
    assert "target-model" in sent

    stage_names = {f"chat {role}" for role in ROLES}

    def linked(spans: list[ReceivedSpan]) -> bool:
        stages = [s for s in spans if s.name in stage_names and s.service == "mpr-gateway"]
        children = {(s.trace_id, s.parent_span_id) for s in spans if s.name == "llm_request"}
        return len(stages) >= 3 and all((s.trace_id, s.span_id) in children for s in stages)

    # vLLM and the gateway batch spans for up to 5 s each.
    spans = otlp_receiver.wait_for(linked, timeout=60)
    stages = {s.attributes["mpr.stage"]: s for s in spans if s.name in stage_names and s.service == "mpr-gateway"}
    assert set(stages) == set(ROLES)
    trace_ids = {s.trace_id for s in stages.values()}
    assert len(trace_ids) == 1
    for role, stage in stages.items():
        vllm_spans = [s for s in spans if s.name == "llm_request" and s.parent_span_id == stage.span_id]
        assert len(vllm_spans) == 1, role
        llm = vllm_spans[0]
        assert llm.trace_id == stage.trace_id and llm.kind == "SERVER"
        assert llm.service.startswith("vllm")
        assert llm.start_ns >= stage.start_ns - 50_000_000  # vLLM's arrival time, within clock slack
    server = next(s for s in spans if s.kind == "SERVER" and s.service == "mpr-gateway" and s.trace_id in trace_ids)
    print(render_tree(spans, server, keys=("gen_ai.request.model", "mpr.stage.accepted", "gen_ai.usage.input_tokens")))
