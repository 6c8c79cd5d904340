"""Tokenising helpers shared by the gate and the merge (pure)."""

from __future__ import annotations

import re
from collections.abc import Container

WORD_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
_TOKEN_RE = re.compile(r"\S+")
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+")
_CONTRACTION_TAIL = re.compile(r"'(s|d|ll|re|ve|m|t)$", re.IGNORECASE)


def words(text: str) -> list[str]:
    """Alphabetic words (with inner apostrophes) in order."""
    return WORD_RE.findall(text)


def is_known(word: str, vocabulary: Container[str]) -> bool:
    """A dictionary word, allowing possessives and contractions (``France's``, ``don't``)."""
    lowered = word.lower()
    if lowered in vocabulary:
        return True
    base = _CONTRACTION_TAIL.sub("", lowered)
    return base != lowered and (base in vocabulary or base + "n" in vocabulary or lowered.replace("'", "") in vocabulary)


def known_ratio(text: str, vocabulary: Container[str]) -> float:
    """Share of dictionary words among the words of ``text`` (0.0 when it has none)."""
    found = words(text)
    if not found:
        return 0.0
    return sum(1 for w in found if is_known(w, vocabulary)) / len(found)


def sentences(text: str) -> list[str]:
    """Split on sentence-final punctuation followed by whitespace."""
    return [s.strip() for s in _SENTENCE_SPLIT_RE.split(text.strip()) if s.strip()]


def token_count(text: str) -> int:
    """Whitespace tokens: a cheap, model-independent length measure."""
    return len(_TOKEN_RE.findall(text))


def truncate_tokens(text: str, limit: int) -> str:
    """The first ``limit`` whitespace tokens of ``text``."""
    tokens = _TOKEN_RE.findall(text)
    return text.strip() if len(tokens) <= limit else " ".join(tokens[:limit])
