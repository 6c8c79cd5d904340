"""The repo's eval set (``eval/prompts``) through ``mpr-gateway eval``: a benchmark-style check.

It prints the report (shown in the test run's output) and checks the quality targets of the
skip gate and the built-in cleaner (issues #10 and #21). One target is not met (see
docs/refinement.md, "Measured"): noisy prompts refined at 10% noise, goal 95% — 88.7% of all,
95.2% of those with a typo other than a deleted word (a prompt that only lost a word mostly reads
as fluent English, which the trigram model cannot tell from the original: 54 of the 89 noisy
prompts the gate skips). For it, and for the typo classes reported on their own, the check is a
floor under today's figures that catches regressions — named as such.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.eval.render import render

REPO_SET = Path(__file__).resolve().parents[2] / "eval" / "prompts"

CLEAN_SKIP_GOAL = 0.95
NON_WORD_RESTORED_GOAL = 0.90
REAL_WORD_RESTORED_GOAL = 0.50
CHANGED_GOAL = 0.003
# Not met (goal 0.95): regression floors under today's figures (88.9%; 88.7% where the clean text is
# skipped; 95.2% of those with a typo other than a deleted word).
NOISY_REFINED_FLOOR = 0.88
NOISY_TYPO_REFINED_FLOOR = 0.945
# Typo classes (no goal of their own): floors under today's figures.
CLASS_FLOORS = {  # class: (restored by the cleaner, refined by the gate)
    "capitalised": (0.80, 0.89),
    "real_word": (0.52, 0.58),
    "non_word": (0.95, 0.98),
}


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
    assert data["noise"]["0.1"]["refine_rate_typo_prompts"] >= NOISY_TYPO_REFINED_FLOOR
    assert data["restoration"]["real_word"]["rate"] >= REAL_WORD_RESTORED_GOAL
    for name, (restored, refined) in CLASS_FLOORS.items():
        figures = data["classes"][name]
        assert figures["restored_rate"] >= restored and figures["refine_rate"] >= refined, (name, figures)
