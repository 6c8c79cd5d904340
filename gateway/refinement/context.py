"""Real-word errors from context (pure): ``bigger tan the`` is ``than``, though ``tan`` is a word.

A dictionary check cannot see a typo that makes another word (``mouse→muse``, ``His→Bis``). A
language model can: a word is suspect when a common word one edit away makes the words around it
(the word and the two after it, given the two before it) far more likely under CMU's trigram model
(:mod:`gateway.refinement.ngram`) — by :data:`MIN_GAIN` in log10, a bar measured on the repo's
eval set (clean prompts against prompts with real-word typos).

Cheap: one pass scores each word in its context (one lookup per word); only the
:data:`CHECKED` least likely windows are tried with alternatives (a few lookups per candidate),
and the windows of *suspects*, rare words a slip makes of far more common ones (``thee``, ``inn``),
at a higher bar. A lone letter next to ``a`` on the keyboard (``Tell me s bio``) is tried as ``a``
(:func:`mistyped_letters`).
The same windows tell an unknown capitalised word at a sentence start from a name
(:func:`reads_as_word`: ``Wrtie a poem`` against ``John a poem``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gateway.refinement.keyboard import is_slip
from gateway.refinement.lexicon import Lexicon
from gateway.refinement.ngram import LOG10_PER_UNIT, OOV_LOG10, START, UNKNOWN, TrigramModel, trigram_model
from gateway.refinement.technical import TECHNICAL_WORDS
from gateway.refinement.tokens import ABBREVIATIONS, Scan, Word

TITLE_GAIN = 3.5
"""log10: the bar for a known capitalised word inside a sentence, judged whatever its window's rank
(``The Cour Seasons``: ``four``; see ``title_gain``)..."""
TITLE_NAME_ZIPF = 4.0
"""...unless it follows a capitalised word rarer than this: a name, of which it is a part (``Elena Fischer``)."""
MIN_GAIN = 3.5
"""log10 of how much more likely the window must be with the other word (≈3,000×)..."""
START_EASING = 0.5
"""...less this at a sentence start, where prompts put a small set of words (``Tell``, ``Write``, ``How``)."""
CHECKED = 5
"""Windows tried with alternatives per prompt: the least likely ones..."""
SUSPECT_GAP = 2.5
"""...and those of suspects wherever they rank: words whose likeliest alternative is this much
(log10) more frequent (``thee``: ``the``, ``inn``: ``in``, ``tittle``: ``title``; rare words that a
slip makes of very common ones)..."""
SUSPECT_GAIN = 4.0
"""...at this bar (log10), for a window that is not among the least likely."""
SUSPECT_MAX_ZIPF = 5.0
"""A word more frequent than this is no suspect (the words slips make of ``the``, ``in``, ``and``
are rarer), and its alternatives are not looked up until its window ranks: a new word costs less."""
FITS = -1.5
"""log10: a word the two before it make at least this likely (1 in 30) is taken as written, and its
window is not ranked: no typo of the eval set was found in such a window (another word must beat it
there, then make the words after it far likelier), and the slot goes to a window that may hold one."""
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


VARIANT_MIN_LENGTH = 5
"""The shorter of two spellings is at least this long (``color``, ``enrol``, ``meter``): ``for``/``four``,
``or``/``our``, ``tel``/``tell`` are typos of each other, not one word spelt two ways."""


def variant(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are UK and US spellings of one word (``colours``/``colors``)."""
    if min(len(a), len(b)) < VARIANT_MIN_LENGTH:
        return False
    for x, y in _VARIANTS:
        if (x in a and a.replace(x, y) == b) or (x in b and b.replace(x, y) == a):
            return True
    return False


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


CONTINUES_MARGIN = 0.5
"""log10: how much better the words after it must read after the common word than after a name
(``Summsrize the``: 1.6; a new product's name, ``Ollama runs``: 0.3 against ``llama``)."""


def continues_as_word(candidate: str, words: Sequence[Word], i: int, model: TrigramModel | None = None) -> bool:
    """Whether the words after the unknown capitalised ``words[i]`` read better after ``candidate``
    than after a name (``Summsrize the following``: ``summarize the``, not ``John the``) — the
    window without its first term, so that a word speech seldom puts there (an instruction verb
    starting a prompt) is not held against it."""
    model = model or trigram_model()
    prev, prev2 = histories(words[max(0, i - 2) : i + 1])[-1]
    logprob = model.logprob
    after = window(candidate, words, i, model) - logprob(candidate, prev, prev2)
    return after > window(NAME_PROXY, words, i, model) - logprob(NAME_PROXY, prev, prev2) + CONTINUES_MARGIN


def number(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are one word in the singular and the plural (or third person): ``mugs``/``mug``."""
    if len(a) < len(b):
        a, b = b, a
    return len(a) > 3 and a == b + "s"


_ALTERNATIVES: dict[tuple[str, int], tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[bool, bool], ...]]] = {}
_ALTERNATIVES_SIZE = 20_000


def _candidates(
    lower: str, lexicon: Lexicon, model: TrigramModel, width: int
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[bool, bool], ...]]:
    """:func:`alternatives`; those of them that are not ``lower`` in the other number; and for each
    alternative, whether it is ``lower`` in the other number and whether ``lower`` is one keyboard
    slip from it (memoised per process)."""
    key = (lower, width)
    found = _ALTERNATIVES.get(key)
    if found is None:
        every = tuple(c for c in lexicon.neighbours(lower) if model.knows(c) and not variant(lower, c))[:width]
        kinds = tuple((number(lower, c), is_slip(lower, c)) for c in every)
        found = (every, tuple(c for c, (other_number, _) in zip(every, kinds) if not other_number), kinds)
        if len(_ALTERNATIVES) >= _ALTERNATIVES_SIZE:
            _ALTERNATIVES.clear()
        _ALTERNATIVES[key] = found
    return found


def alternatives(lower: str, lexicon: Lexicon, model: TrigramModel, width: int = MAX_ALTERNATIVES) -> tuple[str, ...]:
    """The words ``lower`` may be a mistyping of: the ``width`` most frequent common words one edit
    away that the model knows, not mere spelling variants (memoised per process)."""
    return _candidates(lower, lexicon, model, width)[0]


_FLAGS: dict[str, tuple[bool, bool, bool, bool]] = {}
_FLAGS_SIZE = 50_000


def _flags(lower: str, lexicon: Lexicon, model: TrigramModel) -> tuple[bool, bool, bool, bool]:
    """Whether a lower-case word may be judged (plain ASCII letters, not technical vocabulary),
    whether the lexicon knows it, whether it is a suspect (its likeliest alternative is
    :data:`SUSPECT_GAP` more frequent), and whether it is rarer than :data:`TITLE_NAME_ZIPF`
    (capitalised: a name's part) — memoised per process."""
    found = _FLAGS.get(lower)
    if found is None:
        shape = lower.isascii() and lower.isalpha() and lower not in TECHNICAL_WORDS
        own = lexicon.table.zipf(lower)
        suspect = False
        if shape and 0 < own <= SUSPECT_MAX_ZIPF:
            same_number = _candidates(lower, lexicon, model, MAX_ALTERNATIVES)[1]
            suspect = bool(same_number) and lexicon.table.zipf(same_number[0]) - own >= SUSPECT_GAP
        found = (shape, bool(own), suspect, own < TITLE_NAME_ZIPF)
        if len(_FLAGS) >= _FLAGS_SIZE:
            _FLAGS.clear()
        _FLAGS[lower] = found
    return found


_OOV = OOV_LOG10 / LOG10_PER_UNIT
"""OOV_LOG10 in pocketsphinx's integer units."""


def real_word_errors(
    words: Sequence[Word],
    lexicon: Lexicon,
    model: TrigramModel | None = None,
    checked: int = CHECKED,
    min_gain: float = MIN_GAIN,
    width: int = MAX_ALTERNATIVES,
    number_margin: float | None = None,
    slip_bonus: float = 0.0,
    fits: float | None = FITS,
    title_gain: float | None = None,
    capital_slip_bonus: float | None = None,
) -> list[tuple[int, str]]:
    """``(index, likely word)`` for each word that context says is a real-word typo: of the
    ``checked`` least likely windows, those another word (of ``width`` tried) makes ``min_gain``
    (log10) more likely; and of the other windows, those of suspects (:func:`_flags`) that another
    word makes :data:`SUSPECT_GAIN` more likely. The same word in the singular or plural
    (``journeys``/``journey``: both read well, and the model's preference between them is weak
    evidence of a typo) is not tried, or, with ``number_margin``, needs that much more gain; one
    keyboard slip away from the word (:func:`gateway.refinement.keyboard.is_slip`), a candidate
    needs ``slip_bonus`` less. A word the words before it make ``fits`` (log10) likely is not
    judged (``None``: every word is). With ``title_gain``, a known capitalised word inside a sentence
    (a title or a name: ``The Cour Seasons``, ``League of Rations``) is also judged, whatever its
    window's rank, at that bar — unless it follows a rarer capitalised word (part of a name:
    ``Elena Fischer``), punctuation or an abbreviation. A capitalised word's slip candidates get
    ``capital_slip_bonus`` (``None``: ``slip_bonus``): the gate gives none, a name may start a sentence."""
    n = len(words)
    if n < 2:
        return []
    model = model or trigram_model()
    prob = model.raw  # integer logs (ngram.LOG10_PER_UNIT) throughout: the hot loop skips conversions
    unit = 1.0 / LOG10_PER_UNIT
    oov = _OOV
    # one pass: each word's history, whether it is judged, known, a suspect, and its score there
    context: list[History] = []
    scores: list[float] = []  # raw; a word the model lacks scores ``oov``, however known
    lacked: list[bool] = []  # words the model lacks (not merely unlikely ones here)
    neutral: list[float] = []  # the score a window's rank counts: a name the model lacks says nothing of its neighbours
    follows: list[bool] = []  # the next word comes right after this one (no break between)
    tried: list[bool] = []  # judged and known
    suspect: list[bool] = []
    titled: list[bool] = []  # a known capitalised word inside a sentence, judged at ``title_gain``
    upper: list[bool] = []  # capitalised (a name may start a sentence: ``capital_slip_bonus``)
    lowers = [w.lower for w in words]
    flags = _FLAGS.get
    prev: str | None = None
    prev2: str | None = None
    prev_name = False  # the word before is a capitalised rare word: a name (``Elena Fischer``)
    for word, lower in zip(words, lowers):
        shape, known, suspected, rare = flags(lower) or _flags(lower, lexicon, model)
        capitalised = word.text[0].isupper()
        upper.append(capitalised)
        if context:
            follows.append(not word.after_break)
        if word.after_break:
            if word.sentence_start:
                prev, prev2 = START, None
                score = prob([lower, START])
            else:
                prev = prev2 = None
                score = prob([lower])
        else:
            score = prob([lower, prev] if prev2 is None else [lower, prev, prev2])
        context.append((prev, prev2))
        capital = capitalised and not word.sentence_start
        judged = shape and not capital
        if score <= UNKNOWN:
            lacked.append(True)
            scores.append(oov)
            neutral.append(oov if judged else 0.0)
        else:
            lacked.append(False)
            scores.append(score)
            neutral.append(score)
        tried.append(judged and known)
        titled.append(
            title_gain is not None and capital and shape and known and not word.after_break
            and lower not in ABBREVIATIONS and not (prev_name and prev is not None)
        )  # fmt: skip
        prev_name = capital and rare
        suspect.append(suspected)
        prev, prev2 = lower, prev
    follows.append(False)

    windows: list[tuple[float, float, int]] = []
    titles: list[tuple[float, float, int]] = []
    fit = (fits if fits is not None else 1.0) * unit  # raw units (above any log: all ranked)
    for i in range(n):
        if not (tried[i] or titled[i]) or scores[i] >= fit:
            continue
        if follows[i]:
            total = scores[i] + scores[i + 1]
            rank = scores[i] + neutral[i + 1]
            if follows[i + 1]:
                total += scores[i + 2]
                rank += neutral[i + 2]
        elif context[i][0] is None:
            continue  # no word on either side
        else:
            total = rank = scores[i]
        (titles if titled[i] else windows).append((rank, total, i))
    windows.sort()
    found: list[tuple[int, str]] = []
    tuned = number_margin is not None or bool(slip_bonus)  # handicaps and bonuses to apply
    # the least likely windows, and those of suspects wherever they rank; then the titles
    ranked = [(r, t, i, False) for r, (_, t, i) in enumerate(windows) if r < checked or suspect[i]]
    ranked += [(0, t, i, True) for _, t, i in titles]
    for rank_of, total, i, title in ranked:
        if title:
            bar_gain = title_gain * unit  # type: ignore[operator]
        else:
            bar_gain = (min_gain if rank_of < checked else max(min_gain, SUSPECT_GAIN)) * unit
        lower = lowers[i]
        every, same_number, kinds = _candidates(lower, lexicon, model, width)
        if number_margin is not None:
            candidates = every
        else:
            candidates = same_number
            kinds = tuple(k for k in kinds if not k[0])
        prev, prev2 = context[i]
        nxt = lowers[i + 1] if follows[i] else None
        nxt2 = lowers[i + 2] if nxt is not None and follows[i + 1] else None
        if nxt2 is not None and lacked[i + 2]:  # a word the model lacks scores the same after any word
            total -= scores[i + 2]
            nxt2 = None
        if nxt is not None and lacked[i + 1]:
            total -= scores[i + 1] + (scores[i + 2] if nxt2 is not None else 0.0)
            nxt = nxt2 = None
        first = [lower] if prev is None else [lower, prev] if prev2 is None else [lower, prev, prev2]
        best, bar = "", total + bar_gain - (START_EASING * unit if prev == START else 0.0)
        own = scores[i] + FIRST_TERM_MARGIN * unit
        bonus = (slip_bonus if capital_slip_bonus is None or not upper[i] else capital_slip_bonus) * unit
        for candidate, (other_number, slip) in zip(candidates, kinds):
            handicap = 0.0  # raw units a candidate must beat the bar by
            if tuned:
                if other_number and number_margin is not None:
                    handicap = number_margin * unit
                if slip:
                    handicap -= bonus
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


def mistyped_letters(
    text: str, found: Scan, model: TrigramModel | None = None, min_gain: float = MIN_GAIN
) -> list[tuple[Word, str]]:
    """``(letter, "a")`` for each lone letter of ``found`` (a key next to ``a`` right after a word:
    :attr:`gateway.refinement.tokens.Scan.letters`) that is ``a`` mistyped: ``a`` in its place makes
    it and the two words after it ``min_gain`` (log10) more likely (``Tell me s bio``; not ``vectors
    w and v``). A letter with no word right after it, or written twice, is left alone (a variable)."""
    if not found.letters:
        return []
    model = model or trigram_model()
    logprob = model.logprob
    words = found.words
    out: list[tuple[Word, str]] = []
    for k, letter in found.letters:
        if k == 0 or k >= len(words) or not text[letter.start + 1 : words[k].start].isspace():
            continue
        if len(re.findall(rf"(?<![\w'’$]){letter.text}(?![\w$])", text)) > 1:
            continue  # the same letter again: a variable (``find s such that s``)
        before = words[k - 1]
        prev = before.lower
        prev2 = (START if before.sentence_start else None) if before.after_break or k < 2 else words[k - 2].lower
        nxt = words[k].lower
        nxt2 = words[k + 1].lower if k + 1 < len(words) and not words[k + 1].after_break else None

        def fit(word: str) -> float:
            score = logprob(word, prev, prev2) + logprob(nxt, word, prev)
            return score + logprob(nxt2, nxt, word) if nxt2 is not None else score

        if fit("a") - fit(letter.lower) >= min_gain:
            out.append((letter, "a"))
    return out
