"""The scorer on hand-made clean/refined pairs."""

from __future__ import annotations

from gateway.eval.noise import DELETION, REAL_WORD, SWAP, WORD_DELETION, Typo
from gateway.eval.score import DELETED, NON_WORD, category, score
from gateway.eval.score import REAL_WORD as REAL_WORD_CATEGORY

CLEAN = "What is the capital of France and how big is it?"
#        0    1  2   3       4  5      6   7   8   9  10


def test_restored_typos() -> None:
    typos = [Typo(3, "capital", "captial", SWAP, False), Typo(5, "France", "Frane", DELETION, False)]
    result = score(CLEAN, "what is the CAPITAL of France and how big is it", typos)  # case and punctuation do not count
    assert [t.restored for t in result.typos] == [True, True]
    assert result.correct_words == 9 and result.changed == ()


def test_unrestored_typo_reports_the_output() -> None:
    typos = [Typo(3, "capital", "captial", SWAP, False), Typo(5, "France", "Frane", DELETION, False)]
    result = score(CLEAN, "What is the capitol of Frane and how big is it?", typos)
    assert [(t.restored, t.output) for t in result.typos] == [(False, "capitol"), (False, "Frane")]
    assert result.changed == ()


def test_changed_words() -> None:
    result = score(CLEAN, "What was the capital of France and how large is it?")
    assert [(c.word, c.output) for c in result.changed] == [("is", "was"), ("big", "large")]
    assert result.correct_words == 11
    # a dropped word and an inserted one
    result = score(CLEAN, "What is capital of France and how very big is it?")
    assert [(c.word, c.output) for c in result.changed] == [("the", "")]


def test_typo_word_is_not_counted_as_changed() -> None:
    typos = [Typo(7, "how", "hwo", SWAP, False)]
    result = score(CLEAN, "What is the capital of France and hwo big is it?", typos)
    assert not result.typos[0].restored and result.changed == ()
    assert result.correct_words == 10


def test_whole_word_deletion() -> None:
    typos = [Typo(2, "the", "", WORD_DELETION, False)]
    assert score(CLEAN, "What is the capital of France and how big is it?", typos).typos[0].restored
    missed = score(CLEAN, "What is capital of France and how big is it?", typos).typos[0]
    assert not missed.restored and missed.output == "" and missed.category == DELETED


def test_categories() -> None:
    assert category(Typo(0, "capital", "captial", SWAP, False)) == NON_WORD
    assert category(Typo(0, "of", "off", REAL_WORD, True)) == REAL_WORD_CATEGORY
    assert category(Typo(0, "now", "no", DELETION, True)) == REAL_WORD_CATEGORY
    assert category(Typo(0, "the", "", WORD_DELETION, False)) == DELETED


def test_unicode_words_and_apostrophes() -> None:
    clean = "Tell me about Schrödinger’s cat and don't stop"
    assert score(clean, "Tell me about Schrödinger's cat and don’t stop").changed == ()
    changed = score(clean, "Tell me about Schödinner's cat and don't stop").changed
    assert [(c.word, c.output) for c in changed] == [("Schrödinger’s", "Schödinner's")]


def test_repeated_words_align_by_position() -> None:
    clean = "the cat and the dog and the bird"
    typos = [Typo(3, "the", "teh", SWAP, False)]
    result = score(clean, "the cat and teh dog and the bird", typos)
    assert not result.typos[0].restored and result.changed == ()
    assert score(clean, clean, typos).typos[0].restored
