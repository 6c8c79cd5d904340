"""Shadow mode's pure decisions: the header value and the result label."""

from __future__ import annotations

import pytest

from gateway.config.models import Role
from gateway.refinement.gate import GateDecision
from gateway.refinement.pipeline import RefinementOutcome
from gateway.refinement.results import MergeResult
from gateway.refinement.shadow import SHADOW_PENDING, refinement_header, shadow_result


@pytest.mark.parametrize(
    ("mode", "header", "expected"),
    [
        (None, None, "off"),
        (None, "cleaner", "off"),
        ("apply", "cleaner,describer", "cleaner,describer"),
        ("apply", "skipped;reason=clean", "skipped;reason=clean"),
        ("shadow", "cleaner,describer", "shadow;cleaner,describer"),
        ("shadow", "skipped;reason=clean", "shadow;skipped;reason=clean"),
        ("shadow", "fallback;reason=timeout", "shadow;fallback;reason=timeout"),
        ("shadow", None, SHADOW_PENDING),
    ],
)
def test_refinement_header(mode: str | None, header: str | None, expected: str) -> None:
    assert refinement_header(mode, header) == expected  # type: ignore[arg-type]
    assert SHADOW_PENDING == "shadow;pending"


def _outcome(header: str, refined: str = "a b", description: str | None = None) -> RefinementOutcome:
    merged = MergeResult(refined, description, (Role.CLEANER,) if refined != "a b" else ())
    return RefinementOutcome("a b", refined, description, header, 1.0, GateDecision(True, "unknown_words"), merged)


@pytest.mark.parametrize(
    ("outcome", "result"),
    [
        (_outcome("cleaner", refined="A b"), "changed"),
        (_outcome("describer", description="Some context."), "changed"),
        (_outcome("none;rejected=cleaner,paraphraser"), "unchanged"),
        (_outcome("fallback;reason=timeout"), "failed"),
        (_outcome("fallback;reason=internal_error"), "failed"),
        (RefinementOutcome("a b", "a b", None, "skipped;reason=clean", 0.1, GateDecision(False, "clean")), "skipped"),
        (RefinementOutcome("", "", None, "skipped;reason=no_text", 0.0), "skipped"),
    ],
)
def test_shadow_result(outcome: RefinementOutcome, result: str) -> None:
    assert shadow_result(outcome) == result
