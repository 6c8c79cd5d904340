"""Real-word errors from context (pure): ``bigger tan the`` is ``than``, though ``tan`` is a word.

A dictionary check cannot see a typo that makes another word (``mouse→muse``, ``His→Bis``). A
language model can: a word is suspect when a common word one edit away makes the words around it
(the word and the two after it, given the two before it) far more likely under CMU's trigram model
(:mod:`gateway.refinement.ngram`) — by :data:`MIN_GAIN` in log10, a bar measured on the repo's
eval set (clean prompts against prompts with real-word typos).

Cheap: one pass scores each word in its context (one lookup per word); only the
:data:`CHECKED` least likely windows are tried with alternatives (a few lookups per candidate).
The same windows tell an unknown capitalised word at a sentence start from a name
(:func:`reads_as_word`: ``Wrtie a poem`` against ``John a poem``).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.refinement.keyboard import is_slip
from gateway.refinement.lexicon import Lexicon
from gateway.refinement.ngram import LOG10_PER_UNIT, OOV_LOG10, START, TrigramModel, trigram_model
from gateway.refinement.technical import TECHNICAL_WORDS
from gateway.refinement.tokens import Word

MIN_GAIN = 3.5
"""log10 of how much more likely the window must be with the other word (≈3,000×)..."""
START_EASING = 0.5
"""...less this at a sentence start, where prompts put a small set of words (``Tell``, ``Write``, ``How``)."""
CHECKED = 5
"""Windows tried with alternatives per prompt: the least likely ones."""
FIRST_TERM_MARGIN = 0.0
"""A candidate must be at least this much (log10) likelier than the word given the words before it."""
MAX_ALTERNATIVES = 6
"""Alternatives tried per word, the most frequent first (``in``: ``on``, ``is``, ``it``…): more
found nothing more on the eval set, and each costs up to three lookups."""
_VARIANTS = (("our", "or"), ("ise", "ize"), ("yse", "yze"), ("ae", "e"), ("oe", "e"), ("ll", "l"), ("tre", "ter"),
             ("ence", "ense"), ("ogue", "og"))  # fmt: skip
"""UK and US spellings of one word (the model is US English: ``colours`` is not a typo of ``colors``)."""

History = tuple[str | None, str | None]


def histories(words: Sequence[Word]) -> list[History]:
    """``(prev, prev2)`` for each word: the words right before it in the same stretch of prose
    (``<s>`` at a sentence start; ``None`` after punctuation, code or a mention)."""
    out: list[History] = []
    for i, word in enumerate(words):
        if word.after_break:
            out.append((START if word.sentence_start else None, None))
            continue
        before = words[i - 1]
        if before.after_break:
            out.append((before.lower, START if before.sentence_start else None))
        else:
            out.append((before.lower, words[i - 2].lower))
    return out


def judged(word: Word) -> bool:
    """Words the context check judges: plain lower-case words, and capitalised ones only at a sentence
    start; never technical vocabulary (``rebase`` is not a typo of ``debase``)."""
    lower = word.lower
    return (
        lower.isascii() and lower.isalpha() and (word.sentence_start or not word.text[0].isupper())
        and lower not in TECHNICAL_WORDS
    )


def variant(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are UK and US spellings of one word (``colours``/``colors``)."""
    return any(a.replace(x, y) == b or b.replace(x, y) == a for x, y in _VARIANTS)


NAME_PROXY = "john"
"""A frequent name that stands for an unknown one: ``Dev has`` is judged against ``John has``."""
NAME_MARGIN = 1.0
"""log10: a name must read this much better than the word it is one slip from (an unknown name is
rarer than ``john``; any one spelling of it rarer still)."""


def window(word: str, words: Sequence[Word], i: int, model: TrigramModel, context: History | None = None) -> float:
    """log10 P of ``word`` in place of ``words[i]`` and of the two words after it, given the two before."""
    prev, prev2 = context or histories(words[max(0, i - 2) : i + 1])[-1]
    logprob = model.logprob
    score = logprob(word, prev, prev2)
    n = len(words)
    if i + 1 < n and not words[i + 1].after_break:
        nxt = words[i + 1].lower
        score += logprob(nxt, word, prev)
        if i + 2 < n and not words[i + 2].after_break:
            score += logprob(words[i + 2].lower, nxt, word)
    return score


def reads_as_word(candidate: str, words: Sequence[Word], i: int, model: TrigramModel | None = None) -> bool:
    """Whether ``candidate`` fits in place of the unknown capitalised ``words[i]`` better than a name
    would (``Wrtie a poem``: ``Write``; not ``Dev has three``: a name)."""
    model = model or trigram_model()
    return window(candidate, words, i, model) + NAME_MARGIN > window(NAME_PROXY, words, i, model)


def number(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are one word in the singular and the plural (or third person): ``mugs``/``mug``."""
    if len(a) < len(b):
        a, b = b, a
    return len(a) > 3 and a == b + "s"


_ALTERNATIVES: dict[tuple[str, int], tuple[str, ...]] = {}
_ALTERNATIVES_SIZE = 20_000


def alternatives(lower: str, lexicon: Lexicon, model: TrigramModel, width: int = MAX_ALTERNATIVES) -> tuple[str, ...]:
    """The words ``lower`` may be a mistyping of: the ``width`` most frequent common words one edit
    away that the model knows, not mere spelling variants (memoised per process)."""
    key = (lower, width)
    found = _ALTERNATIVES.get(key)
    if found is None:
        found = tuple(c for c in lexicon.neighbours(lower) if model.knows(c) and not variant(lower, c))[:width]
        if len(_ALTERNATIVES) >= _ALTERNATIVES_SIZE:
            _ALTERNATIVES.clear()
        _ALTERNATIVES[key] = found
    return found


def real_word_errors(
    words: Sequence[Word],
    lexicon: Lexicon,
    model: TrigramModel | None = None,
    checked: int = CHECKED,
    min_gain: float = MIN_GAIN,
    width: int = MAX_ALTERNATIVES,
    number_margin: float | None = None,
    slip_bonus: float = 0.0,
) -> list[tuple[int, str]]:
    """``(index, likely word)`` for each word that context says is a real-word typo: of the
    ``checked`` least likely windows, those another word (of ``width`` tried) makes ``min_gain``
    (log10) more likely. The same word in the singular or plural (``journeys``/``journey``: both
    read well, and the model's preference between them is weak evidence of a typo) is not tried,
    or, with ``number_margin``, needs that much more gain; one keyboard slip away from the word
    (:func:`gateway.refinement.keyboard.is_slip`), a candidate needs ``slip_bonus`` less."""
    if len(words) < 2:
        return []
    model = model or trigram_model()
    prob = model.raw  # integer logs (ngram.LOG10_PER_UNIT) throughout: the hot loop skips conversions
    unit = 1.0 / LOG10_PER_UNIT
    oov = OOV_LOG10 * unit
    context = histories(words)
    lowers = [w.lower for w in words]
    scores = [
        prob([w]) if p is None else prob([w, p]) if p2 is None else prob([w, p, p2]) for w, (p, p2) in zip(lowers, context)
    ]
    scores = [s if s > oov else oov for s in scores]
    n = len(words)
    follows = [i + 1 < n and not words[i + 1].after_break for i in range(n)]

    def neutral(j: int) -> float:  # a name the model lacks (Koechlin) says nothing of the words around it
        return 0.0 if scores[j] <= oov and not judged(words[j]) else scores[j]

    windows: list[tuple[float, float, int]] = []
    zipf = lexicon.table.zipf
    for i in range(n):
        if (context[i][0] is None and not follows[i]) or not judged(words[i]) or not zipf(lowers[i]):
            continue
        total = rank = scores[i]
        if follows[i]:
            total += scores[i + 1]
            rank += neutral(i + 1)
            if follows[i + 1]:
                total += scores[i + 2]
                rank += neutral(i + 2)
        windows.append((rank, total, i))
    windows.sort()
    found: list[tuple[int, str]] = []
    gain, eased = min_gain * unit, (min_gain - START_EASING) * unit
    for _, total, i in windows[:checked]:
        lower = lowers[i]
        prev, prev2 = context[i]
        nxt = lowers[i + 1] if follows[i] else None
        nxt2 = lowers[i + 2] if nxt is not None and follows[i + 1] else None
        if nxt2 is not None and scores[i + 2] <= oov:  # a word the model lacks scores the same after any word
            total -= scores[i + 2]
            nxt2 = None
        if nxt is not None and scores[i + 1] <= oov:
            total -= scores[i + 1] + (scores[i + 2] if nxt2 is not None else 0.0)
            nxt = nxt2 = None
        first = [lower] if prev is None else [lower, prev] if prev2 is None else [lower, prev, prev2]
        best, bar = "", total + (eased if prev == START else gain)
        own = scores[i] + FIRST_TERM_MARGIN * unit
        for candidate in alternatives(lower, lexicon, model, width):
            handicap = 0.0  # raw units a candidate must beat the bar by
            if number(lower, candidate):
                if number_margin is None:
                    continue
                handicap = number_margin * unit
            if slip_bonus and is_slip(lower, candidate):
                handicap -= slip_bonus * unit
            # each term is ≤ 0: stop as soon as the candidate cannot clear the bar; and a candidate
            # the words before it do not favour over the word itself is not worth the other lookups
            first[0] = candidate
            score = prob(first) - handicap
            if score <= bar or score <= own - handicap:
                continue
            if nxt is not None:
                score += prob([nxt, candidate] if prev is None else [nxt, candidate, prev])
                if score > bar and nxt2 is not None:
                    score += prob([nxt2, nxt, candidate])
            if score > bar:
                best, bar = candidate, score
        if best:
            found.append((i, best))
    found.sort()
    return found
