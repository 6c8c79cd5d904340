"""The repo's eval set (``eval/prompts``) through ``mpr-gateway eval``: a benchmark-style check.

It prints the report (shown in the test run's output) and checks the quality targets of the
skip gate and the built-in cleaner. Two targets are not met with the CPU resources the gate
uses (see docs/refinement.md, "Measured"): for them the check is a floor that catches
regressions, below the goal — they are named as such.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.eval.render import render

REPO_SET = Path(__file__).resolve().parents[2] / "eval" / "prompts"

CLEAN_SKIP_GOAL = 0.95
NON_WORD_RESTORED_GOAL = 0.85
CHANGED_GOAL = 0.003
# Not met (goals 0.95 and 0.50): regression floors under today's figures.
NOISY_REFINED_FLOOR = 0.80
REAL_WORD_RESTORED_FLOOR = 0.12


def run_eval(capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    assert main(["eval", str(REPO_SET), "--json"]) == 0
    data: dict = json.loads(capsys.readouterr().out)  # type: ignore[type-arg]
    with capsys.disabled():
        print("\n" + render(data))
    return data


def test_repo_set_meets_the_quality_targets(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_eval(capsys)
    assert data["prompts"] >= 600
    assert len({s["source"] for s in data["sources"]}) >= 8

    assert data["clean"]["skip_rate"] >= CLEAN_SKIP_GOAL
    assert data["restoration"]["non_word"]["rate"] >= NON_WORD_RESTORED_GOAL
    assert data["changed"]["rate"] < CHANGED_GOAL
    for source in data["sources"]:  # no class of prompt is left behind
        assert source["clean_skip_rate"] >= 0.85, source

    assert data["noise"]["0.1"]["refine_rate"] >= NOISY_REFINED_FLOOR
    assert data["noise"]["0.1"]["refine_rate_clean_skipped"] >= NOISY_REFINED_FLOOR
    assert data["restoration"]["real_word"]["rate"] >= REAL_WORD_RESTORED_FLOOR
