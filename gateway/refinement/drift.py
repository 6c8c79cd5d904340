"""Lexical drift between the original prompt and a rewrite (pure).

``drift = 1 - Indel similarity`` (rapidfuzz ``ratio``) of the case-folded, whitespace-collapsed
texts: 0.0 for the same text, 1.0 for nothing in common. ``length_ratio`` is the longer length over
the shorter, so shrinking a prompt to nothing is bounded like padding it.
"""

from __future__ import annotations

from rapidfuzz import fuzz


def normalise(text: str) -> str:
    """Case-fold and collapse whitespace."""
    return " ".join(text.casefold().split())


def drift(original: str, rewrite: str) -> float:
    """Distance in [0, 1] between two texts after :func:`normalise`."""
    return round(1.0 - fuzz.ratio(normalise(original), normalise(rewrite)) / 100.0, 4)


def length_ratio(original: str, rewrite: str) -> float:
    """max(len)/min(len) of the stripped texts (inf when one is empty)."""
    a, b = len(original.strip()), len(rewrite.strip())
    if min(a, b) == 0:
        return float("inf")
    return round(max(a, b) / min(a, b), 4)
