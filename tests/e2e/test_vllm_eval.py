"""``mpr-gateway eval --config`` against the real vLLM cleaner (the session's CPU worker).

Random LoRA weights write nonsense, so the figures say little about quality; the test checks that
the harness drives real stages: every cleaner call answered, latency measured, typos scored.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gateway.cli import main
from tests.e2e.gateway_proc import e2e_routes
from tests.e2e.worker_proc import WorkerProcess

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(600)]

PROMPTS = [
    {"id": "p1", "source": "fact", "prompt": "What is the capital of France and how large is it?"},
    {"id": "p2", "source": "math", "prompt": "A train travels 120 km in two hours. What is its average speed?"},
    {"id": "p3", "source": "bio", "prompt": "Tell me a short biography of Marie Curie and her research."},
]


def test_eval_runs_against_the_vllm_cleaner(
    vllm_worker: WorkerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    routes = e2e_routes(vllm_worker.base_url, "mpr-tiny-llama", "http://127.0.0.1:9/v1")
    config = tmp_path / "routes.yaml"
    config.write_text(yaml.safe_dump(routes))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))

    assert main(["eval", str(prompts), "--config", str(config), "--noise", "0,0.2", "--json", "--concurrency", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == f"config:{config}" and report["stages"] == ["cleaner"]
    cleaner = report["latency_ms"]["stages"]["cleaner"]
    assert cleaner["n"] >= len(PROMPTS) and cleaner["errors"] == 0 and cleaner["p50"] > 0
    assert report["clean"]["n"] == len(PROMPTS)
    assert report["noise"]["0.2"]["typos"] > 0
    assert report["restoration"]["all"]["n"] == report["noise"]["0.2"]["typos"]
