"""``bench/compare_layouts.py --smoke``: one vLLM for all three LoRAs vs one per role vs refinement off.

Runs the script as a subprocess (it starts four real CPU vLLM servers concurrently, three gateways
and a fake target, sends one request per layout and stops everything) and checks its table: every
layout row is there with a positive latency and memory, and the two vLLM layouts' requests reached
the stages while the floor's did not.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.worker_proc import REPO

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(540)]

SCRIPT = REPO / "bench" / "compare_layouts.py"
LAYOUTS = ("floor", "a: one vLLM", "b: one per role")
BUDGET_S = 420


def _run(argv: list[str], log: Path) -> tuple[int, str]:
    """Run the script; past the budget, SIGTERM it (it stops every process it started) before killing."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            code = proc.wait(BUDGET_S)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            pytest.fail(f"compare_layouts.py --smoke took over {BUDGET_S}s:\n{log.read_text(errors='replace')[-4000:]}")
    return code, log.read_text(errors="replace")


def test_smoke_prints_every_layout(test_model_dir: Path, vllm_python_path: Path, tmp_path: Path) -> None:
    report = tmp_path / "layouts.json"
    started = time.monotonic()
    code, output = _run([sys.executable, str(SCRIPT), "--smoke", "--model-dir", str(test_model_dir),
                         "--vllm-python", str(vllm_python_path), "--json", str(report)], tmp_path / "run.log")
    took = time.monotonic() - started
    assert code == 0, output[-4000:]
    print(f"compare_layouts.py --smoke took {took:.0f} s")

    rows = {line.split("|")[1].strip(): line for line in output.splitlines() if line.startswith("| ")}
    assert set(LAYOUTS) <= set(rows), output[-3000:]

    results = {r["layout"]: r for r in json.loads(report.read_text())["results"]}
    assert list(results) == list(LAYOUTS)
    for layout, r in results.items():
        assert r["requests"] == 1 and r["ok"] == 1, r
        assert r["p50_ms"] > 0 and r["p99_ms"] > 0 and r["rps"] > 0, r
        assert r["rss_mb"] > 0 and r["processes"] >= 1, r
    assert results["floor"]["refined"] == 0 and results["floor"]["headers"] == {"off": 1}, results["floor"]
    for layout in ("a: one vLLM", "b: one per role"):
        assert results[layout]["refined"] == 1, results[layout]  # the three stages ran (nonsense, so rejected)
    # one vLLM tree (launcher + server + engine core) vs three: more processes, more memory
    assert results["b: one per role"]["processes"] > results["a: one vLLM"]["processes"] > results["floor"]["processes"]
    assert results["b: one per role"]["rss_mb"] > results["a: one vLLM"]["rss_mb"] > results["floor"]["rss_mb"]
