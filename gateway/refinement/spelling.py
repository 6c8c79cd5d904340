"""The built-in cleaner: CPU spelling correction (the demo's cleaner and a GPU-free fallback stage).

It fixes only what the skip gate calls a typo, with the gate's own rules, so it never touches
names, acronyms, numbers, code, URLs, quoted or discussed words (``recieve vs receive``), or a
prompt in another language, and it keeps the writer's spelling variety (US and UK spellings are
both in the lexicon, so neither is "corrected" into the other).

* A word not in the lexicon is replaced by the candidate (symspellpy, edit distance ≤ 2) with the
  best noisy-channel score: the candidate's frequency, how likely the typo is as a keyboard slip
  from it (swap, dropped or doubled letter, neighbouring key), and how well it fits between its
  neighbours (word bigrams). ``ofr the`` becomes ``for the``, not ``of the``.
* A known word is replaced only when its context says it is another common word mistyped
  (``bigger tan the`` → ``than``; :mod:`gateway.refinement.context`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gateway.config.models import Role
from gateway.refinement.cache import cache_key, cached
from gateway.refinement.context import real_word_errors
from gateway.refinement.gate import unknown_words
from gateway.refinement.keyboard import channel
from gateway.refinement.language import looks_non_english
from gateway.refinement.lexicon import Lexicon, lexicon, vocabulary
from gateway.refinement.results import StageResult
from gateway.refinement.tokens import Word, scan

CANDIDATE_MIN_ZIPF = 1.5
"""Words rarer than this are not offered as corrections."""
CONTEXT_WEIGHT = 0.5
"""How much the neighbours count against the word's own frequency (the bigram table is partial:
it lacks many pairs with names, such as ``of France``)."""
BACKOFF = math.log10(0.4)
"""Stupid back-off: an unseen word pair scores 0.4 × the unigram probability."""
MENTIONED_AFTER = frozenset({"vs", "versus", "word", "term", "spelling", "spelled", "spelt", "spell", "misspelled", "misspelling"})
"""A word right after one of these is discussed, not used (``the word teh``, ``spell recieve``)."""
MENTIONED_BEFORE = frozenset({"vs", "versus"})
"""A word right before one of these is discussed, not used (``recieve vs receive``)."""

@dataclass(frozen=True, slots=True)
class Correction:
    """One fix: ``text[start:start+len(old)]`` becomes ``new``."""

    start: int
    old: str
    new: str
    reason: str  # non_word | real_word


@lru_cache(maxsize=1)
def _symspell() -> Any:
    """symspellpy over the lexicon's words: from the on-disk cache, else built (≈3 s) and cached."""
    from symspellpy import SymSpell

    from gateway.refinement import lexicon as lexicon_module

    key = cache_key(("wordfreq", "symspellpy"), (lexicon_module.__file__, __file__))
    return cached("speller", key, _build_symspell, SymSpell)


def _build_symspell() -> Any:
    from symspellpy import SymSpell

    words, _ = vocabulary()
    speller = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
    for word, zipf in words.items():
        if zipf >= CANDIDATE_MIN_ZIPF and word.isascii() and word.isalpha():
            speller.create_dictionary_entry(word, int(10 ** zipf))
    return speller


class SpellingCleaner:
    """The cleaner as lexicon-based, context-aware spelling correction, keeping case and punctuation."""

    role = Role.CLEANER

    def __init__(self, words: Lexicon | None = None) -> None:
        self._lexicon = words or lexicon()
        self._speller = _symspell()

    def corrections(self, text: str) -> list[Correction]:
        """The fixes for ``text`` (empty for a clean prompt, code, or another language)."""
        found = scan(text)
        words = found.words
        if not words:
            return []
        typos = [w for w in unknown_words(words, self._lexicon)]
        if typos and looks_non_english(words, self._lexicon):
            return []
        fixes: dict[int, Correction] = {}
        index = {w.start: i for i, w in enumerate(words)}
        for word in typos:
            i = index[word.start]
            if _mentioned(words, i):
                continue
            best = self._best_candidate(word, words, i)
            if best is not None:
                fixes[i] = Correction(word.start, word.text, _with_case(best, word.text), "non_word")
        for i, candidate in real_word_errors(words, self._lexicon):
            if i not in fixes and not _mentioned(words, i):
                word = words[i]
                fixes[i] = Correction(word.start, word.text, _with_case(candidate, word.text), "real_word")
        return [fixes[i] for i in sorted(fixes)]

    def correct(self, text: str) -> str:
        """``text`` with its typos fixed."""
        out: list[str] = []
        at = 0
        for fix in self.corrections(text):
            out.append(text[at : fix.start])
            out.append(fix.new)
            at = fix.start + len(fix.old)
        out.append(text[at:])
        return "".join(out)

    def _best_candidate(self, word: Word, words: Sequence[Word], i: int) -> str | None:
        from symspellpy import Verbosity

        lower = word.lower.replace("’", "'")
        suggestions = self._speller.lookup(lower, Verbosity.ALL, max_edit_distance=2 if len(lower) > 4 else 1)
        if not suggestions:
            return None
        prev = words[i - 1].lower if i > 0 and not word.after_break else None
        nxt = words[i + 1].lower if i + 1 < len(words) and not words[i + 1].after_break else None
        best, best_score = None, -math.inf
        for suggestion in suggestions:
            candidate = suggestion.term
            score = self.fit(prev, candidate, nxt) + math.log10(channel(lower, candidate))
            if score > best_score:
                best, best_score = candidate, score
        return best

    def fit(self, prev: str | None, word: str, nxt: str | None) -> float:
        """log10 of how likely ``word`` is between ``prev`` and ``nxt``: its unigram probability,
        raised by ``CONTEXT_WEIGHT`` × the log ratio a back-off bigram model gives each seen pair."""
        zipf = self._lexicon.table.zipf
        bigram = self._lexicon.bigram
        own = zipf(word) or 1.0
        score = own - 9.0
        if prev is not None:
            pair = bigram(prev, word)
            # log P(word | prev) - log P(word): with a seen pair, count(prev word) / count(prev) / P(word)
            score += CONTEXT_WEIGHT * ((pair - (zipf(prev) or 1.0)) - (own - 9.0) if pair else BACKOFF)
        if nxt is not None:
            pair = bigram(word, nxt)
            score += CONTEXT_WEIGHT * ((pair - own) - ((zipf(nxt) or 1.0) - 9.0) if pair else BACKOFF)
        return score

    async def run(self, text: str, headers: dict[str, str] | None = None) -> StageResult:
        started = time.perf_counter()
        output = self.correct(text)
        return StageResult(self.role, output=output, latency_ms=(time.perf_counter() - started) * 1000)


def _mentioned(words: Sequence[Word], i: int) -> bool:
    """Whether the word is discussed rather than used: next to ``vs``, ``the word``, ``spelling``."""
    before = words[i - 1].lower if i > 0 else ""
    after = words[i + 1].lower if i + 1 < len(words) else ""
    return before in MENTIONED_AFTER or after in MENTIONED_BEFORE or (before == "or" and i > 1 and _looks_alike(words[i - 2].lower, words[i].lower)) or (after == "or" and i + 2 < len(words) and _looks_alike(words[i + 2].lower, words[i].lower))


def _looks_alike(a: str, b: str) -> bool:
    """Two spellings of one word (``recieve or receive``): same letters, nearly the same order."""
    return a != b and sorted(a) == sorted(b) or (abs(len(a) - len(b)) <= 1 and a[:2] == b[:2] and a[-2:] == b[-2:] and len(a) > 4)


def _with_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[0].isupper():
        return word[0].upper() + word[1:]
    return word
