"""The span tree a real gateway exports over OTLP/HTTP, checked in a receiver inside the test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes
from tests.support.otlp_receiver import OtlpHttpReceiver, ReceivedSpan
from tests.telemetry.conftest import (
    CLEAN,
    DESCRIBED,
    DIRTY,
    FAST_BATCH,
    PARAPHRASED,
    ROLES,
    chat,
    complete_trace,
    header,
    one,
    refining,
    start_gateway,
    trace_of,
)

INBOUND_TRACE = "0af7651916cd43dd8448eb211c80319c"
INBOUND_PARENT = "b7ad6b7169203331"
INBOUND = f"00-{INBOUND_TRACE}-{INBOUND_PARENT}-01"
SERVER = "POST /v1/chat/completions"
TARGET = "chat target-model"
STAGE_SPANS = tuple(f"chat {role}" for role in ROLES)
PROMPT_FRAGMENTS = ("captial", "frane", "Western Europe", "how large is it", "capital of france")


def string_values(spans: list[ReceivedSpan]) -> list[str]:
    out: list[str] = []
    for span in spans:
        for value in span.attributes.values():
            items = value if isinstance(value, list) else [value]
            out += [v for v in items if isinstance(v, str)]
    return out


def _full_trace(rx: OtlpHttpReceiver, names: tuple[str, ...]) -> list[ReceivedSpan]:
    holder: dict[str, str] = {}

    def ready(spans: list[ReceivedSpan]) -> bool:
        found = complete_trace(names)(spans)
        if found:
            holder["id"] = found
        return bool(found)

    spans = rx.wait_for(ready, timeout=30)
    return trace_of(spans, holder["id"])


def test_span_tree_of_a_refined_request(traced_gateway: GatewayProcess, fake: FakeOpenAI, http_receiver: OtlpHttpReceiver) -> None:
    http_receiver.clear()
    refining(fake, delay_s=0.15)
    response = chat(traced_gateway, headers={"traceparent": INBOUND})
    assert response.status_code == 200, response.text
    assert response.headers["x-mpr-refinement"] == "describer,paraphraser"

    spans = _full_trace(http_receiver, (SERVER, "refine", "merge", TARGET, *STAGE_SPANS))
    server = one(spans, SERVER)
    refine = one(spans, "refine")
    merge = one(spans, "merge")
    target = one(spans, TARGET)
    stages = {role: one(spans, f"chat {role}") for role in ROLES}

    # The inbound traceparent is honoured: same trace, the caller's span is our SERVER span's parent.
    assert server.kind == "SERVER" and server.trace_id == INBOUND_TRACE and server.parent_span_id == INBOUND_PARENT
    assert server.attributes["http.route"] == "/v1/chat/completions"
    assert server.attributes["mpr.refinement"] == "describer,paraphraser"
    assert server.service == "mpr-gateway"
    # Parent/child links.
    assert refine.parent_span_id == server.span_id and refine.kind == "INTERNAL"
    assert target.parent_span_id == server.span_id and target.kind == "CLIENT"
    assert merge.parent_span_id == refine.span_id
    for stage in stages.values():
        assert stage.parent_span_id == refine.span_id and stage.kind == "CLIENT"
    # The three stages run at the same time; the merge comes after all of them; the target after the merge.
    assert max(s.start_ns for s in stages.values()) < min(s.end_ns for s in stages.values())
    assert merge.start_ns >= max(s.end_ns for s in stages.values())
    assert target.start_ns >= refine.end_ns
    assert refine.start_ns >= server.start_ns and target.end_ns <= server.end_ns

    # Each outgoing request carried OUR span's context, never the inbound header.
    received = {rec.body["model"]: header(rec.headers, "traceparent") for rec in fake.requests}
    for role, stage in stages.items():
        assert stage.is_context_of(received[role])
    assert target.is_context_of(received["target-model"])
    assert INBOUND not in received.values()

    # GenAI attributes.
    for role, stage in stages.items():
        a = stage.attributes
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == "vllm"
        assert a["gen_ai.request.model"] == role
        assert a["gen_ai.request.stream"] is False
        assert a["server.address"] == "127.0.0.1" and a["server.port"] == fake.port
        assert a["gen_ai.usage.input_tokens"] == 7 and a["gen_ai.usage.output_tokens"] > 0
        assert a["gen_ai.response.finish_reasons"] == ["stop"]
        assert a["mpr.stage"] == role
        assert "error.type" not in a
    assert stages["paraphraser"].attributes["mpr.stage.accepted"] is True
    assert stages["describer"].attributes["mpr.stage.accepted"] is True
    assert 0 < stages["paraphraser"].attributes["mpr.stage.drift"] <= 0.18
    assert stages["cleaner"].attributes["mpr.stage.outcome"] == "accepted"
    assert refine.attributes["mpr.refinement"] == "describer,paraphraser"
    assert refine.attributes["mpr.skipped"] is False
    assert refine.attributes["mpr.applied"] == ["describer", "paraphraser"]
    assert merge.attributes["mpr.applied"] == ["describer", "paraphraser"]
    t = target.attributes
    assert t["gen_ai.operation.name"] == "chat" and t["gen_ai.request.model"] == "target-model"
    assert t["gen_ai.request.stream"] is False and t["mpr.target"] == "test-model"
    assert t["gen_ai.usage.input_tokens"] == 7 and t["gen_ai.usage.output_tokens"] > 0
    assert t["gen_ai.response.finish_reasons"] == ["stop"] and t["gen_ai.response.model"] == "target-model"
    assert t["server.address"] == "127.0.0.1" and t["server.port"] == fake.port
    assert t["http.response.status_code"] == 200

    # No prompt or answer text anywhere by default.
    texts = " ".join(string_values(spans))
    for fragment in PROMPT_FRAGMENTS:
        assert fragment not in texts
    assert not any(k.startswith(("gen_ai.input", "gen_ai.output", "mpr.prompt")) for s in spans for k in s.attributes)


def test_new_trace_without_inbound_header(traced_gateway: GatewayProcess, fake: FakeOpenAI, http_receiver: OtlpHttpReceiver) -> None:
    http_receiver.clear()
    refining(fake, delay_s=0.0)
    assert chat(traced_gateway).status_code == 200
    spans = _full_trace(http_receiver, (SERVER, "refine", TARGET))
    server = one(spans, SERVER)
    assert server.parent_span_id == "" and server.trace_id != INBOUND_TRACE
    assert one(spans, TARGET).is_context_of(header(fake.requests_for("target-model")[0].headers, "traceparent"))


def test_stage_errors_and_timeouts_on_stage_spans(traced_gateway: GatewayProcess, fake: FakeOpenAI, http_receiver: OtlpHttpReceiver) -> None:
    http_receiver.clear()
    fake.behave("cleaner", Behaviour(mode="status", status=500))
    fake.behave("paraphraser", Behaviour(mode="hang"))  # adapter timeout_s is 1.0
    fake.behave("describer", Behaviour(reply=lambda m, b: DESCRIBED))
    response = chat(traced_gateway)
    assert response.status_code == 200
    spans = _full_trace(http_receiver, (SERVER, "refine", "merge", TARGET, *STAGE_SPANS))
    cleaner, paraphraser = one(spans, "chat cleaner"), one(spans, "chat paraphraser")
    assert cleaner.attributes["error.type"] == "http_500" and cleaner.status_code == 2  # STATUS_CODE_ERROR
    assert cleaner.attributes["mpr.stage.accepted"] is False and cleaner.attributes["mpr.stage.outcome"] == "error"
    assert paraphraser.attributes["error.type"] == "timeout"
    assert paraphraser.attributes["mpr.stage.outcome"] == "timeout"
    assert one(spans, "chat describer").attributes["mpr.stage.accepted"] is True
    assert one(spans, "refine").attributes["mpr.refinement"] == "describer"


def test_fallback_reason_when_every_stage_fails(traced_gateway: GatewayProcess, fake: FakeOpenAI, http_receiver: OtlpHttpReceiver) -> None:
    http_receiver.clear()
    for role in ROLES:
        fake.behave(role, Behaviour(mode="status", status=503))
    assert chat(traced_gateway).headers["x-mpr-refinement"] == "fallback;reason=http_503"
    spans = _full_trace(http_receiver, (SERVER, "refine", TARGET, *STAGE_SPANS))
    refine = one(spans, "refine")
    assert refine.attributes["mpr.fallback_reason"] == "http_503"
    assert all(one(spans, name).attributes["error.type"] == "http_503" for name in STAGE_SPANS)


def test_skipped_refinement(traced_gateway: GatewayProcess, fake: FakeOpenAI, http_receiver: OtlpHttpReceiver) -> None:
    http_receiver.clear()
    assert chat(traced_gateway, content=CLEAN).headers["x-mpr-refinement"] == "skipped;reason=clean"
    spans = _full_trace(http_receiver, (SERVER, "refine", TARGET))
    refine = one(spans, "refine")
    assert refine.attributes["mpr.skipped"] is True and refine.attributes["mpr.skip_reason"] == "clean"
    assert not [s for s in spans if s.name in STAGE_SPANS or s.name == "merge"]
    assert [r.body["model"] for r in fake.requests] == ["target-model"]


def test_streaming_target_span_covers_the_stream(traced_gateway: GatewayProcess, fake: FakeOpenAI, http_receiver: OtlpHttpReceiver) -> None:
    http_receiver.clear()
    fake.behave("target-model", Behaviour(chunks=5, chunk_delay_s=0.05))
    with httpx.stream(
        "POST",
        traced_gateway.base_url + "/chat/completions",
        json={"model": "test-model", "messages": [{"role": "user", "content": CLEAN}], "stream": True},
        headers={"x-mpr-refine": "off"},
        timeout=15,
    ) as response:
        body = b"".join(response.iter_bytes())
    assert b"[DONE]" in body
    spans = _full_trace(http_receiver, (SERVER, TARGET))
    target = one(spans, TARGET)
    assert target.attributes["gen_ai.request.stream"] is True
    assert "error.type" not in target.attributes
    assert (target.end_ns - target.start_ns) >= 0.2e9  # the span lasts until the relay ends
    assert not [s for s in spans if s.name == "refine"]  # refinement off: no refine span


def test_target_error_status_on_target_span(traced_gateway: GatewayProcess, fake: FakeOpenAI, http_receiver: OtlpHttpReceiver) -> None:
    http_receiver.clear()
    fake.behave("target-model", Behaviour(mode="status", status=429, headers={"retry-after": "3"}))
    assert chat(traced_gateway, content=CLEAN).status_code == 429
    spans = _full_trace(http_receiver, (SERVER, TARGET))
    target = one(spans, TARGET)
    assert target.attributes["error.type"] == "429" and target.status_code == 2
    assert one(spans, SERVER).attributes["http.status_code"] == 429


def test_target_unreachable_sets_error_type(fake: FakeOpenAI, http_receiver: OtlpHttpReceiver, workdir: Path) -> None:
    from tests.support.gateway_proc import free_port

    http_receiver.clear()
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = routes(dead, telemetry={"traces_exporter": "otlp_http", "otlp_endpoint": http_receiver.traces_url})
    with GatewayProcess(config, workdir, env=FAST_BATCH) as gw:
        assert chat(gw, content=CLEAN).status_code == 502
        spans = _full_trace(http_receiver, (SERVER, TARGET))
    target = one(spans, TARGET)
    assert target.attributes["error.type"] == "upstream_unreachable"
    assert target.status_code == 2


def test_one_target_span_per_attempt_with_its_number_and_target(fake: FakeOpenAI, http_receiver: OtlpHttpReceiver, workdir: Path) -> None:
    http_receiver.clear()
    fake.behave("target-model", Behaviour(mode="status", status=503))
    config = routes(fake.base_url, telemetry={"traces_exporter": "otlp_http", "otlp_endpoint": http_receiver.endpoint})
    config["targets"][0].update(fallbacks=["backup"], retry={"attempts": 2, "backoff_s": 0.01})
    config["targets"].append({"name": "backup", "endpoints": [fake.base_url], "upstream_model": "backup-model"})
    with GatewayProcess(config, workdir, env=FAST_BATCH) as gw:
        r = chat(gw, content=CLEAN)
        assert r.status_code == 200 and r.headers["x-mpr-attempts"] == "3"
        spans = _full_trace(http_receiver, (SERVER, TARGET, "chat backup-model"))
    tries = sorted((s for s in spans if s.name.startswith("chat ")), key=lambda s: s.attributes["mpr.attempt"])
    assert [(s.name, s.attributes["mpr.target"], s.attributes["mpr.attempt"]) for s in tries] == [
        (TARGET, "test-model", 1),
        (TARGET, "test-model", 2),
        ("chat backup-model", "backup", 3),
    ]
    assert [s.attributes.get("error.type") for s in tries] == ["503", "503", None]
    server = one(spans, SERVER)
    assert all(s.parent_span_id == server.span_id for s in tries)
    headers = [header(r.headers, "traceparent") for r in fake.requests]
    assert len(set(headers)) == 3  # each attempt carried its own span's context


@pytest.fixture(scope="module")
def capturing_gateway(fake: FakeOpenAI, http_receiver: OtlpHttpReceiver, workdir: Path) -> Iterator[GatewayProcess]:
    """Prompt capture on; tracing switched on by the standard OTEL_* variables, not the config."""
    env = {
        **FAST_BATCH,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": http_receiver.endpoint,
        "OTEL_SERVICE_NAME": "mpr-gateway-capture",
    }
    gw = start_gateway(routes(fake.base_url, fake.base_url, telemetry={"capture_prompts": True}), workdir, env=env)
    try:
        yield gw
    finally:
        gw.stop()


def test_prompt_text_only_when_opted_in(capturing_gateway: GatewayProcess, fake: FakeOpenAI, http_receiver: OtlpHttpReceiver) -> None:
    http_receiver.clear()
    refining(fake, delay_s=0.0)
    assert chat(capturing_gateway).status_code == 200
    spans = _full_trace(http_receiver, (SERVER, "refine", TARGET, *STAGE_SPANS))
    assert {s.service for s in spans} == {"mpr-gateway-capture"}  # OTEL_SERVICE_NAME honoured
    refine = one(spans, "refine")
    assert refine.attributes["mpr.prompt.original"] == DIRTY
    assert refine.attributes["mpr.prompt.refined"] == PARAPHRASED
    assert refine.attributes["mpr.description"] == DESCRIBED
    paraphraser = one(spans, "chat paraphraser").attributes
    assert json.loads(paraphraser["gen_ai.input.messages"])[0]["parts"][0]["content"] == DIRTY
    assert json.loads(paraphraser["gen_ai.output.messages"])[0]["parts"][0]["content"] == PARAPHRASED
    target = one(spans, TARGET).attributes
    assert PARAPHRASED in target["gen_ai.input.messages"]  # what the target actually received
    assert json.loads(target["gen_ai.output.messages"])[0]["parts"][0]["content"].startswith("echo: ")
