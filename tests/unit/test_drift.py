from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from gateway.refinement.drift import drift, length_ratio, normalise


def test_identical_and_case_insensitive() -> None:
    assert drift("Hello  World", "hello world") == 0.0


def test_typo_fix_is_small_drift() -> None:
    assert drift("what is the captial of frane?", "what is the capital of France?") < 0.1


def test_unrelated_is_large_drift() -> None:
    assert drift("what is the capital of France?", "bake a chocolate cake tonight") > 0.5


def test_length_ratio_symmetric() -> None:
    assert length_ratio("abcd", "abcdefgh") == 2.0
    assert length_ratio("abcdefgh", "abcd") == 2.0
    assert math.isinf(length_ratio("abc", "  "))


@given(st.text(), st.text())
def test_drift_bounds_and_symmetry(a: str, b: str) -> None:
    d = drift(a, b)
    assert 0.0 <= d <= 1.0
    assert abs(d - drift(b, a)) < 1e-9


@given(st.text())
def test_normalise_idempotent(a: str) -> None:
    assert normalise(normalise(a)) == normalise(a)
