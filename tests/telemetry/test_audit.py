"""The refinement audit log: opt-in (capture_prompts), sampled, one JSON line per refinement in
apply and shadow mode, to a file or to the JSON log stream; nothing when disabled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.config.models import Role
from gateway.refinement.gate import GateDecision
from gateway.refinement.pipeline import RefinementOutcome
from gateway.refinement.results import MergeResult, StageVerdict
from gateway.telemetry.audit import AuditLog, audit_entry
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes
from tests.support.otlp_receiver import OtlpHttpReceiver
from tests.telemetry.conftest import CLEAN, DESCRIBED, DIRTY, FAST_BATCH, NO_OTEL_ENV, PARAPHRASED, chat, refining, wait_until

STAGE_KEYS = {"accepted", "reason", "drift", "length_ratio", "latency_ms", "error"}


def audit_lines(text: str) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [e for e in entries if e.get("logger") == "gateway.audit"]


def by_request(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["request_id"]: e for e in entries}


def test_sampled_lines_hold_original_and_refined_in_a_file(fake: FakeOpenAI, workdir: Path) -> None:
    path = workdir / "audit.jsonl"
    telemetry = {"capture_prompts": True, "audit_sample_rate": 1.0, "audit_path": str(path)}
    with GatewayProcess(routes(fake.base_url, fake.base_url, telemetry=telemetry), workdir, env=NO_OTEL_ENV) as gw:
        refining(fake, delay_s=0.0)
        assert chat(gw, headers={"x-request-id": "audit-apply"}).status_code == 200
        assert chat(gw, headers={"x-request-id": "audit-shadow", "x-mpr-mode": "shadow"}).status_code == 200
        assert chat(gw, content=CLEAN, headers={"x-request-id": "audit-clean"}).status_code == 200
        assert chat(gw, headers={"x-request-id": "audit-off", "x-mpr-refine": "off"}).status_code == 200
        entries = wait_until(lambda: audit_lines(path.read_text()) if len(audit_lines(path.read_text())) >= 3 else None)
        assert not audit_lines(gw.logs())  # the file, not the log stream
    lines = by_request(audit_lines(path.read_text()))
    assert set(lines) == {"audit-apply", "audit-shadow", "audit-clean"}  # refinement off: nothing to audit

    apply = lines["audit-apply"]
    assert apply["msg"] == "refinement" and apply["level"] == "info" and apply["ts"].endswith("Z")
    assert apply["model"] == "test-model" and apply["mode"] == "apply"
    assert apply["original"] == DIRTY and apply["refined"] == PARAPHRASED and apply["description"] == DESCRIBED
    assert apply["refinement"] == "describer,paraphraser" and apply["refine_ms"] >= 0
    assert apply["gate"] == {"refine": True, "reason": "unknown_words"}
    assert set(apply["stages"]) == {"cleaner", "describer", "paraphraser"}
    for stage in apply["stages"].values():
        assert set(stage) == STAGE_KEYS and stage["accepted"] is True and stage["error"] is None
    assert 0 < apply["stages"]["paraphraser"]["drift"] <= 0.18
    assert "trace_id" not in apply  # tracing off

    shadow = lines["audit-shadow"]
    assert shadow["mode"] == "shadow" and shadow["refinement"] == "shadow;describer,paraphraser"
    assert shadow["original"] == DIRTY and shadow["refined"] == PARAPHRASED  # what would have been sent

    clean = lines["audit-clean"]
    assert clean["refinement"] == "skipped;reason=clean" and clean["gate"] == {"refine": False, "reason": "clean"}
    assert clean["original"] == clean["refined"] == CLEAN and clean["stages"] == {}


def test_without_a_path_lines_go_to_the_log_stream_with_the_trace_id(
    fake: FakeOpenAI, workdir: Path, http_receiver: OtlpHttpReceiver
) -> None:
    telemetry = {"capture_prompts": True, "audit_sample_rate": 1.0, "traces_exporter": "otlp_http", "otlp_endpoint": http_receiver.endpoint}
    with GatewayProcess(routes(fake.base_url, fake.base_url, telemetry=telemetry), workdir, env=FAST_BATCH) as gw:
        refining(fake, delay_s=0.0)
        http_receiver.clear()
        assert chat(gw, headers={"x-request-id": "audit-stream", "x-mpr-mode": "shadow"}).status_code == 200
        entry = wait_until(lambda: by_request(audit_lines(gw.logs())).get("audit-stream"))
    assert entry["mode"] == "shadow" and entry["original"] == DIRTY and entry["refined"] == PARAPHRASED
    spans = http_receiver.wait_for(lambda s: any(x.name == "refine" and x.trace_id == entry["trace_id"] for x in s))
    refine = next(x for x in spans if x.name == "refine" and x.trace_id == entry["trace_id"])
    assert refine.attributes["mpr.mode"] == "shadow"


def test_nothing_is_audited_by_default(fake: FakeOpenAI, workdir: Path) -> None:
    with GatewayProcess(routes(fake.base_url, fake.base_url, telemetry={"capture_prompts": True}), workdir, env=NO_OTEL_ENV) as gw:
        refining(fake, delay_s=0.0)
        assert chat(gw).status_code == 200
        assert chat(gw, headers={"x-mpr-mode": "shadow"}).status_code == 200
        wait_until(lambda: '"gateway.access"' in gw.logs())
        assert not audit_lines(gw.logs())


def test_audit_without_capture_prompts_refuses_to_start(fake: FakeOpenAI, workdir: Path) -> None:
    config = routes(fake.base_url, telemetry={"audit_sample_rate": 0.1})
    with pytest.raises(RuntimeError) as info:
        GatewayProcess(config, workdir, env=NO_OTEL_ENV).start()
    assert "capture_prompts" in str(info.value) and "user data" in str(info.value)


# -- in process --------------------------------------------------------------------------------


def _outcome() -> RefinementOutcome:
    verdicts = {
        Role.CLEANER: StageVerdict(Role.CLEANER, "fixed", True, drift=0.05, length_ratio=1.0, latency_ms=12.345),
        Role.DESCRIBER: StageVerdict(Role.DESCRIBER, None, False, reason="error", latency_ms=1.0, error="http_500"),
    }
    merged = MergeResult("fixed", None, (Role.CLEANER,), verdicts)
    return RefinementOutcome("fxied", "fixed", None, "cleaner", 20.0, GateDecision(True, "unknown_words"), merged)


def test_audit_entry_fields() -> None:
    entry = audit_entry(_outcome(), model="m", mode="apply", refinement="cleaner", request_id="r1", trace_id="ab" * 16)
    assert entry == {
        "request_id": "r1",
        "trace_id": "ab" * 16,
        "model": "m",
        "mode": "apply",
        "refinement": "cleaner",
        "refine_ms": 20.0,
        "original": "fxied",
        "refined": "fixed",
        "description": None,
        "gate": {"refine": True, "reason": "unknown_words"},
        "stages": {
            "cleaner": {"accepted": True, "reason": None, "drift": 0.05, "length_ratio": 1.0, "latency_ms": 12.35, "error": None},
            "describer": {"accepted": False, "reason": "error", "drift": None, "length_ratio": None, "latency_ms": 1.0, "error": "http_500"},
        },
    }


def test_sampling_follows_the_rate(tmp_path: Path) -> None:
    draws = iter([0.1, 0.9, 0.49, 0.5, 0.0])
    audit = AuditLog(0.5, tmp_path / "a.jsonl", draw=lambda: next(draws))
    written = [audit.record(_outcome(), model="m", mode="shadow", refinement="shadow;cleaner") for _ in range(5)]
    audit.close()
    assert written == [True, False, True, False, True]
    lines = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and all(e["mode"] == "shadow" and e["original"] == "fxied" for e in lines)
