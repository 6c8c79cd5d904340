"""Real-word errors from context (pure): ``bigger tan the`` is ``than``, though ``tan`` is a word.

A dictionary check cannot see a typo that makes another word (``mouse→muse``, ``His→Bis``). Word
bigrams can: a word whose pairs with both neighbours are unseen, while a common word one edit
away forms frequent pairs with them, is probably that word mistyped. The bigram table holds only
frequent pairs (symspellpy's 242k), so "unseen" is weak evidence on its own; the suspect must also
be rarer than the candidate, and the candidate's support must be strong (see the thresholds).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.refinement.lexicon import Lexicon
from gateway.refinement.tokens import Word

MIN_SUPPORT = 10.0
"""Sum of the candidate's two bigram Zipf scores (≈5 each: pairs such as ``than the``)."""
MIN_SUPPORT_ONE_SIDE = 6.0
"""At the edge of a sentence only one pair exists: it must be very frequent."""
MAX_RARER = 0.0
"""The suspect's frequency minus the candidate's must not exceed this (log10)."""


def real_word_errors(words: Sequence[Word], lexicon: Lexicon, start: int = 0) -> list[tuple[int, str]]:
    """``(index, likely word)`` for each word that context says is a real-word typo."""
    found: list[tuple[int, str]] = []
    bigram = lexicon.bigram
    zipf = lexicon.table.zipf
    last = len(words) - 1
    for i in range(start, last + 1):
        word = words[i]
        lower = word.lower
        if not lower.isascii() or not lower.isalpha() or (word.text[0].isupper() and not word.sentence_start):
            continue
        prev = None if word.after_break or i == 0 else words[i - 1].lower
        nxt = words[i + 1].lower if i < last and not words[i + 1].after_break else None
        if prev is None and nxt is None:
            continue
        own = zipf(lower)
        if not own:
            continue  # not a word: the dictionary check's business
        if (prev is not None and bigram(prev, lower)) or (nxt is not None and bigram(lower, nxt)):
            continue  # a frequent pair: the word fits
        best, best_support = "", 0.0
        for candidate in lexicon.neighbours(lower):
            if zipf(candidate) - own < -MAX_RARER:
                continue
            left = bigram(prev, candidate) if prev is not None else 0.0
            right = bigram(candidate, nxt) if nxt is not None else 0.0
            if prev is not None and nxt is not None:
                if not (left and right) or left + right < MIN_SUPPORT:
                    continue
                support = left + right
            else:
                support = left or right
                if support < MIN_SUPPORT_ONE_SIDE:
                    continue
            if support > best_support:
                best, best_support = candidate, support
        if best:
            found.append((i, best))
    return found
