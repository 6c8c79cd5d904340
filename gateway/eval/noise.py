"""Seeded typo injection into clean prompts.

For a rate ``r > 0``, :func:`inject` puts ``max(1, round(r * n))`` typos into distinct eligible
words (``n`` = the number of eligible words). A word is eligible when it is an ASCII alphabetic
dictionary word standing on its own (not part of an identifier, file name or contraction), outside
code (fences, backticks), quotes and URLs, and not ALL-CAPS. Capitalised words count: at a sentence
start, and in Title Case inside one (titles in lists, names the dictionary knows: ``The Old Man``,
``Nikola Tesla``) — real traffic mistypes them as often as any other word. Each typo is one of :data:`KINDS`, picked uniformly among
those that apply to the word; the first letter keeps its case.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Container
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice

from gateway.eval.words import word_spans
from gateway.refinement.dictionary import dictionary_path
from gateway.refinement.keyboard import QWERTY_NEIGHBOURS

SWAP = "swap"
DELETION = "deletion"
INSERTION = "insertion"
SUBSTITUTION = "substitution"
DOUBLED = "doubled"
REAL_WORD = "real_word"
WORD_DELETION = "word_deletion"
KINDS = (SWAP, DELETION, INSERTION, SUBSTITUTION, DOUBLED, REAL_WORD, WORD_DELETION)

COMMON_WORDS = 30_000  # real-word substitutions come from the most frequent dictionary words

_QWERTY = QWERTY_NEIGHBOURS
_LETTERS = "abcdefghijklmnopqrstuvwxyz"

# Spans where no typo goes: fenced and inline code, URLs / e-mails, quoted text.
_PROTECTED_RE = re.compile(
    r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`]*`"
    r"|\S+://\S+|\bwww\.\S+|\S+@\S+\.\S+"
    r"|\"[^\"]*\"|“[^”]*”|‘[^‘’]*(?:’\w[^‘’]*)*’(?!\w)|(?<!\w)'[^'\n]*?(?:'\w[^'\n]*?)*'(?!\w)",
    re.DOTALL,
)
_CHUNK_RE = re.compile(r"\S+")
_BARE_RE = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")  # a chunk's core: plain words, maybe hyphenated
_PUNCT = ".,;:!?\"'()[]{}“”‘’«»…—–*"
_SENTENCE_END = ".!?…"
_OPENERS = "\"'“‘([{*-#>»«"


@dataclass(frozen=True, slots=True)
class Typo:
    """One injected typo: clean word ``index`` (see :func:`gateway.eval.words.word_spans`),
    the ``word`` it replaced, the ``typo`` text ('' for a whole-word deletion), its ``kind``, and
    ``real_word``: the typo is itself a dictionary word."""

    index: int
    word: str
    typo: str
    kind: str
    real_word: bool


@dataclass(frozen=True, slots=True)
class NoisyText:
    text: str
    typos: tuple[Typo, ...]


@lru_cache(maxsize=1)
def common_words(limit: int = COMMON_WORDS) -> frozenset[str]:
    """The ``limit`` most frequent words of the bundled frequency dictionary ("word count" lines)."""
    with open(dictionary_path(), encoding="utf-8") as handle:
        return frozenset(line.split(" ", 1)[0].lower() for line in islice(handle, limit) if line.strip())


def rng_for(seed: int, key: str, rate: float) -> random.Random:
    """A generator for one prompt at one rate, independent of ``PYTHONHASHSEED``."""
    return random.Random(seed * 0x1_0000_0000 + zlib.crc32(f"{key}\0{rate!r}".encode()))


def typo_count(rate: float, eligible: int) -> int:
    """``max(1, round(rate * eligible))`` for ``rate > 0``, capped at ``eligible``; 0 for rate 0."""
    if rate <= 0 or eligible == 0:
        return 0
    return min(eligible, max(1, round(rate * eligible)))


def eligible_words(text: str, vocabulary: Container[str]) -> list[int]:
    """Indices (into :func:`word_spans`) of the words a typo may go into."""
    protected = [m.span() for m in _PROTECTED_RE.finditer(text)]
    chunks = [m.span() for m in _CHUNK_RE.finditer(text)]
    found = []
    c = 0
    for index, match in enumerate(word_spans(text)):
        word = match.group()
        start, end = match.span()
        if not (word.isascii() and word.isalpha()) or word.isupper() or not word[1:].islower() and len(word) > 1:
            continue
        if any(s < end and start < e for s, e in protected):
            continue
        while chunks[c][1] <= start:
            c += 1
        chunk = text[chunks[c][0] : chunks[c][1]].strip(_PUNCT)
        if not _BARE_RE.fullmatch(chunk):
            continue
        if word.lower() in vocabulary:
            found.append(index)
    return found


def sentence_start(text: str, start: int) -> bool:
    """Whether the word at ``start`` begins the text, a line or a sentence (after . ! ?)."""
    i = start - 1
    while i >= 0 and (text[i].isspace() or text[i] in _OPENERS):
        if text[i] == "\n":
            return True
        i -= 1
    return i < 0 or text[i] in _SENTENCE_END


def inject(
    text: str,
    rate: float,
    rng: random.Random,
    vocabulary: Container[str],
    common: Container[str] | None = None,
) -> NoisyText:
    """``text`` with ``typo_count(rate, n)`` typos in distinct eligible words, and their records."""
    common = common_words() if common is None else common
    eligible = eligible_words(text, vocabulary)
    chosen = sorted(rng.sample(eligible, typo_count(rate, len(eligible))))
    spans = word_spans(text)
    typos = []
    for index in chosen:
        word = spans[index].group()
        first = sentence_start(text, spans[index].start())
        kind, typo = make_typo(word, rng, common, allow_word_deletion=not first)
        real = kind == REAL_WORD or (kind != WORD_DELETION and typo.lower() in vocabulary)
        typos.append(Typo(index, word, typo, kind, real))
    noisy = text
    for record in reversed(typos):
        start, end = spans[record.index].span()
        if record.kind == WORD_DELETION:
            if start > 0 and noisy[start - 1] in " \t":
                start -= 1
                while start > 0 and noisy[start - 1] in " \t":
                    start -= 1
            elif end < len(noisy) and noisy[end] in " \t":
                end += 1
        noisy = noisy[:start] + record.typo + noisy[end:]
    return NoisyText(noisy, tuple(typos))


def applicable_kinds(word: str, common: Container[str], *, allow_word_deletion: bool) -> list[str]:
    """The kinds of typo that can be made in ``word``."""
    lowered = word.lower()
    kinds = []
    if any(a != b for a, b in zip(lowered, lowered[1:], strict=False)):
        kinds.append(SWAP)
    if len(lowered) >= 3:
        kinds.append(DELETION)
    kinds += [INSERTION, SUBSTITUTION, DOUBLED]
    if real_word_candidates(lowered, common):
        kinds.append(REAL_WORD)
    if allow_word_deletion:
        kinds.append(WORD_DELETION)
    return kinds


def make_typo(word: str, rng: random.Random, common: Container[str], *, allow_word_deletion: bool = True) -> tuple[str, str]:
    """``(kind, typo)`` for ``word``: a kind picked uniformly among the applicable ones."""
    kind = rng.choice(applicable_kinds(word, common, allow_word_deletion=allow_word_deletion))
    return kind, apply_kind(kind, word, rng, common)


def apply_kind(kind: str, word: str, rng: random.Random, common: Container[str]) -> str:
    """``word`` with one typo of ``kind`` (which must apply); the first letter keeps its case."""
    w = word.lower()
    if kind == WORD_DELETION:
        return ""
    if kind == SWAP:
        i = rng.choice([i for i in range(len(w) - 1) if w[i] != w[i + 1]])
        out = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
    elif kind == DELETION:
        i = rng.randrange(len(w))
        out = w[:i] + w[i + 1 :]
    elif kind == INSERTION:
        i = rng.randrange(len(w))
        key = rng.choice(_QWERTY[w[i]])
        at = i + rng.randrange(2)  # before or after the key it neighbours
        out = w[:at] + key + w[at:]
    elif kind == SUBSTITUTION:
        i = rng.randrange(len(w))
        out = w[:i] + rng.choice(_QWERTY[w[i]]) + w[i + 1 :]
    elif kind == DOUBLED:
        i = rng.randrange(len(w))
        out = w[: i + 1] + w[i:]
    elif kind == REAL_WORD:
        out = rng.choice(real_word_candidates(w, common))
    else:
        raise ValueError(f"unknown typo kind {kind!r}")
    return out[0].upper() + out[1:] if word[0].isupper() else out


def edits1(word: str) -> set[str]:
    """Every string at Damerau edit distance 1 from lower-case ``word`` (a-z)."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    swaps = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
    inserts = {a + c + b for a, b in splits for c in _LETTERS}
    return (deletes | swaps | replaces | inserts) - {word}


def real_word_candidates(word: str, common: Container[str]) -> list[str]:
    """Common words at edit distance 1 from ``word`` (sorted: the choice is reproducible)."""
    return sorted(c for c in edits1(word.lower()) if c and c in common)


def noisy_version(text: str, key: str, rate: float, seed: int, vocabulary: Container[str]) -> NoisyText:
    """The reproducible noisy version of one prompt (``key``: its id) at ``rate``."""
    if rate <= 0:
        return NoisyText(text, ())
    return inject(text, rate, rng_for(seed, key, rate), vocabulary)
