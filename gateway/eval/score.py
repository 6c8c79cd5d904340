"""Scoring a refinement against the clean text (pure).

The clean and refined texts are split into words (:mod:`gateway.eval.words`, compared
case-insensitively) and aligned with ``difflib.SequenceMatcher(autojunk=False)``. A clean word is
*kept* when it falls in an equal block. An injected typo is *restored* when its clean word is
kept; a clean word that got no typo is *changed* when it is not kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from gateway.eval.noise import WORD_DELETION, Typo
from gateway.eval.words import normalise, word_spans

NON_WORD = "non_word"
REAL_WORD = "real_word"
DELETED = "deleted"
CATEGORIES = (NON_WORD, REAL_WORD, DELETED)


@dataclass(frozen=True, slots=True)
class TypoScore:
    """One typo's fate: ``output`` is what the refined text had in the word's place ('' = nothing)."""

    typo: Typo
    category: str
    restored: bool
    output: str


@dataclass(frozen=True, slots=True)
class ChangedWord:
    """A correct clean word the refinement changed into ``output`` ('' = dropped)."""

    index: int
    word: str
    output: str


@dataclass(frozen=True, slots=True)
class Score:
    typos: tuple[TypoScore, ...]
    correct_words: int  # clean words that got no typo
    changed: tuple[ChangedWord, ...]


def category(typo: Typo) -> str:
    """``deleted`` (whole word dropped), ``real_word`` (the typo is a dictionary word) or ``non_word``."""
    if typo.kind == WORD_DELETION:
        return DELETED
    return REAL_WORD if typo.real_word else NON_WORD


def align(clean: Sequence[str], refined: Sequence[str]) -> list[tuple[bool, int, int]]:
    """Per clean word: ``(kept, j1, j2)`` — kept in an equal block, and the refined words ``[j1, j2)``
    standing in its place."""
    out: list[tuple[bool, int, int]] = []
    matcher = SequenceMatcher(None, [normalise(w) for w in clean], [normalise(w) for w in refined], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "insert":
            continue
        for i in range(i1, i2):
            if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
                j = j1 + (i - i1)
                out.append((tag == "equal", j, j + 1))
            else:  # delete, or a replace of unequal lengths: the whole replacement
                out.append((False, j1, j2))
    return out


def score(clean: str, refined: str, typos: Sequence[Typo] = ()) -> Score:
    """How ``refined`` treats the clean words of ``clean``: typos restored, correct words changed."""
    clean_words = [m.group() for m in word_spans(clean)]
    refined_words = [m.group() for m in word_spans(refined)]
    alignment = align(clean_words, refined_words)

    def output(i: int) -> str:
        _, j1, j2 = alignment[i]
        return " ".join(refined_words[j1:j2])

    injected = {t.index for t in typos}
    scored = tuple(TypoScore(t, category(t), alignment[t.index][0], output(t.index)) for t in typos)
    changed = tuple(
        ChangedWord(i, w, output(i)) for i, w in enumerate(clean_words) if i not in injected and not alignment[i][0]
    )
    return Score(scored, len(clean_words) - len(injected), changed)
