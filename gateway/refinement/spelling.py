"""The built-in cleaner: CPU spelling correction (the demo's cleaner and a GPU-free fallback stage).

It fixes only what the skip gate calls a typo, with the gate's own rules, so it never touches
names, acronyms, numbers, code, URLs, quoted or discussed words (``recieve vs receive``), or a
prompt in another language, and it keeps the writer's spelling variety (US and UK spellings are
both in the lexicon, so neither is "corrected" into the other).

* A word not in the lexicon is replaced by the candidate (symspellpy, edit distance ≤ 2) with the
  best noisy-channel score: the probability of the sentence around it with the candidate in its
  place (CMU's trigram model, :mod:`gateway.refinement.ngram`: the candidate and the two words
  after it, given the two before it) × how likely the typo is as a keyboard slip from it (swap,
  dropped or doubled letter, neighbouring key). ``ofr the`` becomes ``for the``, not ``of the``;
  ``captial of frane`` becomes ``capital of France``, not ``frame``.
* A known word is replaced only when its context says it is another common word mistyped
  (``bigger tan the`` → ``than``; :mod:`gateway.refinement.context`), judged after the non-word
  fixes, every word tried; so is a lone letter that is ``a`` mistyped (``me s bio`` → ``me a bio``).
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
from gateway.refinement.context import TITLE_GAIN, histories, mistyped_letters, real_word_errors
from gateway.refinement.gate import unknown_words
from gateway.refinement.keyboard import channel
from gateway.refinement.language import looks_non_english
from gateway.refinement.lexicon import Lexicon, lexicon, vocabulary
from gateway.refinement.ngram import TrigramModel, trigram_model
from gateway.refinement.results import StageResult
from gateway.refinement.tokens import Word, scan

CANDIDATE_MIN_ZIPF = 1.5
"""Words rarer than this are not offered as corrections."""
REAL_WORD_GAIN = 3.25
"""A known word is replaced when another word one edit away makes its context this much (log10)
more likely — every word is tried (the gate tries the least likely few, at a higher bar)..."""
REAL_WORD_WIDTH = 20
"""...with this many alternatives each (the gate: six)..."""
NUMBER_MARGIN = 1.0
"""...the same word in the singular or plural (``journey`` for ``journeys``) needs this much more..."""
SLIP_BONUS = 0.75
"""...and a word of which the typo is one keyboard slip (``muse``: ``mouse`` with a letter dropped)
this much less: fingers slip more often than they pick another word."""
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
def speller() -> Any:
    """symspellpy over the lexicon's words: from the on-disk cache, else built (≈3 s) and cached."""
    from symspellpy import SymSpell

    from gateway.refinement import lexicon as lexicon_module
    from gateway.refinement import technical

    key = cache_key(("wordfreq", "symspellpy"), (lexicon_module.__file__, technical.__file__, __file__))
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

    def __init__(self, words: Lexicon | None = None, model: TrigramModel | None = None) -> None:
        self._lexicon = words or lexicon()
        self._speller = speller()
        self._model = model or trigram_model()

    def corrections(self, text: str) -> list[Correction]:
        """The fixes for ``text`` (empty for a clean prompt, code, or another language)."""
        scanned = scan(text)
        words = list(scanned.words)
        if not words:
            return []
        typos = unknown_words(scanned.words, self._lexicon)
        if typos and looks_non_english(scanned.words, self._lexicon):
            return []
        fixes: dict[int, Correction] = {}
        index = {w.start: i for i, w in enumerate(words)}
        for word in typos:  # left to right: a fixed word is the next one's context (``captial of frane``)
            i = index[word.start]
            if _mentioned(words, i):
                continue
            best = self._best_candidate(word, words, i)
            if best is not None:
                fixes[i] = Correction(word.start, word.text, _with_case(best, word.text), "non_word")
                words[i] = word._replace(lower=best)
        suspects = real_word_errors(
            words, self._lexicon, self._model, len(words), REAL_WORD_GAIN, REAL_WORD_WIDTH, NUMBER_MARGIN, SLIP_BONUS,
            fits=None,  # every word: at its lower bars the cleaner does fix a few that fit the words before them
            title_gain=TITLE_GAIN,  # The Cour Seasons: Four (real-word restored 50.4 -> 51.8%, changed 0.199 -> 0.204%)
        )
        out = list(fixes.values())
        for i, candidate in suspects:
            if i not in fixes and not _mentioned(words, i):
                word = words[i]
                out.append(Correction(word.start, word.text, _with_case(candidate, word.text), "real_word"))
        for letter, candidate in mistyped_letters(text, scanned):  # me s bio
            out.append(Correction(letter.start, letter.text, candidate, "real_word"))
        return sorted(out, key=lambda fix: fix.start)

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
        context = histories(words)[i]
        follows = i + 1 < len(words) and not words[i + 1].after_break
        nxt = words[i + 1].lower if follows else None
        nxt2 = words[i + 2].lower if follows and i + 2 < len(words) and not words[i + 2].after_break else None
        best, best_score = None, -math.inf
        for suggestion in suggestions:
            candidate = suggestion.term
            score = self.fit(candidate, context, nxt, nxt2) + math.log10(channel(lower, candidate))
            if score > best_score:
                best, best_score = candidate, score
        return best

    def fit(self, word: str, context: tuple[str | None, str | None], nxt: str | None, nxt2: str | None) -> float:
        """log10 P of ``word`` and the two words after it, given the two before it (the trigram
        model; a word the model lacks gets the lexicon's frequency, and the model backs off)."""
        model = self._model
        prev, prev2 = context
        if model.knows(word):
            score = model.logprob(word, prev, prev2)
        else:
            score = (self._lexicon.table.zipf(word) or 1.0) - 9.0
        if nxt is not None:
            score += model.logprob(nxt, word, prev)
            if nxt2 is not None:
                score += model.logprob(nxt2, nxt, word)
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
