"""Word tokenisation shared by the noise injector and the scorer (so word indices agree)."""

from __future__ import annotations

import re

# Unicode letters/digits (no '_') with inner apostrophes: "don't", "France’s", "42".
WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def word_spans(text: str) -> list[re.Match[str]]:
    """Every word of ``text`` in order, as regex matches (``start()``, ``end()``, ``group()``)."""
    return list(WORD_RE.finditer(text))


def normalise(word: str) -> str:
    """The comparison form of a word: lower case, ’ written as '."""
    return word.replace("’", "'").lower()


def words(text: str) -> list[str]:
    """The normalised words of ``text``; index ``i`` is the ``i``-th match of :func:`word_spans`."""
    return [normalise(m.group()) for m in WORD_RE.finditer(text)]
