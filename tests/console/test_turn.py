"""The chat console's pure rendering: a turn's refinement summary, timings and the fleet views;
and the ``details`` control's parsing."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.console.fleet import ready_lines, stage_lines, status_lines
from gateway.console.turn import Timings, applied_stages, summary_lines, timing_line, verdict_text
from gateway.refinement.controls import parse_controls

DETAILS: dict[str, Any] = {
    "original": "whats the captial",
    "refined": "What is the capital?",
    "description": "A capital is a seat of government.",
    "refinement": "describer,paraphraser",
    "refine_ms": 181.4,
    "gate": {"refine": True, "reason": "unknown_words", "tokens": ["captial"]},
    "stages": {
        "paraphraser": {"output": "What is the capital?", "accepted": True, "reason": None, "drift": 0.14, "latency_ms": 150.2, "error": None},
        "cleaner": {"output": "whats the capital", "accepted": True, "reason": None, "drift": 0.04, "latency_ms": 12.0, "error": None},
        "describer": {"output": "A capital is a seat of government.", "accepted": True, "reason": None, "drift": 0.7, "latency_ms": 160.0, "error": None},
    },
    "cache": "miss",
}


@pytest.mark.parametrize(
    ("header", "applied"),
    [
        ("cleaner,describer", ("cleaner", "describer")),
        ("paraphraser;cache=hit", ("paraphraser",)),
        ("shadow;cleaner", ("cleaner",)),
        ("skipped;reason=clean", ()),
        ("fallback;reason=timeout", ()),
        ("none;rejected=cleaner", ()),
        ("off", ()),
        (None, ()),
    ],
)
def test_applied_stages(header: str | None, applied: tuple[str, ...]) -> None:
    assert applied_stages(header) == applied


@pytest.mark.parametrize(
    ("verdict", "applied", "expected"),
    [
        ({"accepted": True, "drift": 0.04}, True, ("applied", "drift 0.04")),
        ({"accepted": True, "drift": 0.04}, False, ("accepted", "superseded by another rewrite")),
        ({"accepted": False, "reason": "drift", "drift": 0.52}, False, ("rejected", "drift too high (0.52)")),
        ({"accepted": False, "reason": "length", "length_ratio": 3.04}, False, ("rejected", "too long (3.0x the prompt)")),
        ({"accepted": False, "reason": "error", "error": "deadline"}, False, ("failed", "stage failed: deadline")),
        ({"accepted": False, "reason": "echo"}, False, ("rejected", "repeated the prompt")),
        ({"accepted": False, "reason": "something_new"}, False, ("rejected", "something_new")),
    ],
)
def test_verdict_text(verdict: dict[str, Any], applied: bool, expected: tuple[str, str]) -> None:
    assert verdict_text(verdict, applied) == expected


def test_summary_lines_show_original_refined_context_and_stages_in_order() -> None:
    lines = summary_lines(DETAILS, "describer,paraphraser")
    assert lines == [
        "refinement: describer,paraphraser (gate: unknown_words: captial)",
        "  original  whats the captial",
        "  refined   What is the capital?",
        "  context   A capital is a seat of government.",
        "  cleaner      accepted  superseded by another rewrite · 12 ms",
        "  describer    applied   drift 0.70 · 160 ms",
        "  paraphraser  applied   drift 0.14 · 150 ms",
    ]


def test_summary_of_a_skipped_prompt_and_without_details() -> None:
    skipped = {"original": "Hi.", "refined": "Hi.", "description": None, "gate": {"refine": False, "reason": "clean", "tokens": []}, "stages": {}, "cache": "hit"}
    assert summary_lines(skipped, "skipped;reason=clean") == [
        "refinement: skipped;reason=clean (skip gate: clean) [cached]",
        "  original  Hi.",
        "  refined   (unchanged)",
    ]
    assert summary_lines(None, "shadow;pending") == ["refinement: shadow;pending"]
    assert summary_lines(None, None) == ["refinement: off"]


def test_a_built_in_stand_in_is_named() -> None:
    details = {**DETAILS, "stages": {"cleaner": {**DETAILS["stages"]["cleaner"], "fallback_from": "timeout"}}}
    (line,) = summary_lines(details, "cleaner")[4:]
    assert line == "  cleaner      applied   drift 0.04 · built-in cleaner stood in (adapter: timeout) · 12 ms"


def test_colour_only_when_asked() -> None:
    assert not any("\x1b[" in line for line in summary_lines(DETAILS, "describer,paraphraser"))
    assert any("\x1b[32m" in line for line in summary_lines(DETAILS, "describer,paraphraser", color=True))


def test_timing_line() -> None:
    assert timing_line(Timings(181.44, 402.6, 950.0)) == "refine 181 ms · first token 403 ms · total 950 ms"
    assert timing_line(Timings(None, None, 12.0)) == "refine - · first token - · total 12 ms"


READY: dict[str, Any] = {
    "status": "ready",
    "draining": False,
    "config": {"hash": "abc123def456", "source": "routes.yaml"},
    "targets": {"gpt": [{"url": "http://t/v1", "up": True}, {"url": "http://t2/v1", "up": False}]},
    "adapters": {
        "cleaner": [{"url": "http://c/v1", "up": True, "last_probe_ms": 3.2}],
        "paraphraser": [{"url": "http://p/v1", "up": False, "last_error": "connect", "cooling_down": True}],
    },
    "state": {"kind": "redis", "reachable": False},
}


def test_stage_lines_from_ready() -> None:
    assert stage_lines(READY) == [
        "cleaner      1/1 up",
        "  http://c/v1  up  probe 3 ms",
        "describer    not configured",
        "paraphraser  0/1 up",
        "  http://p/v1  down  cooling down  (connect)",
    ]


def test_ready_lines() -> None:
    assert ready_lines(READY) == [
        "gateway      ready",
        "config       abc123def456 (routes.yaml)",
        "target       gpt: 1/2 endpoint(s) up",
        "stages       cleaner 1/1, paraphraser 0/1",
        "state        redis (unreachable: failing open)",
    ]


def test_status_lines_render_any_object() -> None:
    body = {
        "pid": 7,
        "config": {"hash": "abc"},
        "stages": [{"role": "cleaner", "kind": "vllm", "endpoints": [{"up": True}, {"up": False}]}],
        "tags": ["a", "b"],
        "deep": {"a": {"b": {"c": {"d": 1}}}},
    }
    assert status_lines(body) == [
        "pid: 7",
        "config:",
        "  hash: abc",
        "stages:",
        "  - cleaner  1/2 up  kind=vllm",
        "tags: a, b",
        "deep:",
        "  a:",
        "    b:",
        "      c: (1 item(s))",
    ]


@pytest.mark.parametrize(
    ("headers", "mpr", "details"),
    [
        ({}, None, False),
        ({"x-mpr-details": "1"}, None, True),
        ({"x-mpr-details": "off"}, None, False),
        ({}, {"details": True}, True),
        ({"x-mpr-details": "1"}, {"details": False}, False),
        ({}, {"return_details": True}, True),
        ({}, {"return_details": True, "details": False}, False),
    ],
)
def test_the_details_control(headers: dict[str, str], mpr: Any, details: bool) -> None:
    assert parse_controls(headers.get, mpr).return_details is details
