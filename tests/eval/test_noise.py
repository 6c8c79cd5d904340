"""The seeded typo injector: reproducible, leaves protected words alone, does what each kind says."""

from __future__ import annotations

import random

import pytest

from gateway.eval import noise
from gateway.eval.noise import (
    DELETION,
    DOUBLED,
    INSERTION,
    KINDS,
    REAL_WORD,
    SUBSTITUTION,
    SWAP,
    WORD_DELETION,
    apply_kind,
    applicable_kinds,
    common_words,
    eligible_words,
    inject,
    noisy_version,
    typo_count,
)
from gateway.eval.words import word_spans
from gateway.refinement.dictionary import english_words

VOCAB = english_words()

PROTECTED = (
    'Ask Marie Curie about the "quick brown fox" and \'lazy dog\' or ‘curly words’ and “double curly” '
    "with `inline code here` and https://example.com/some/path or www.example.org/a/page and "
    "mail bob@example.com now. NASA and the FBI use my_var, file.txt and e.g. sample. "
    "We don't know.\n```\nprint the value\n```\n"
)


def eligible_texts(text: str) -> list[str]:
    spans = word_spans(text)
    return [spans[i].group() for i in eligible_words(text, VOCAB)]


def test_protected_words_are_never_eligible() -> None:
    found = eligible_texts(PROTECTED)
    for word in ("quick", "brown", "fox", "lazy", "dog", "curly", "words", "double", "inline",
                 "code", "here", "example", "com", "some", "path", "www", "page", "bob", "NASA", "FBI",
                 "my", "var", "file", "txt", "e", "g", "don't", "print", "value"):  # fmt: skip
        assert word not in found, word
    # plain lower-case words, a capitalised word that starts a sentence, and Title Case words the
    # dictionary knows (names too: real traffic mistypes them) are eligible
    assert {"the", "about", "and", "with", "or", "mail", "now", "use", "sample", "know", "Ask", "We", "Marie"} <= set(found)


def test_injection_never_touches_protected_words() -> None:
    clean_words = [m.group() for m in word_spans(PROTECTED)]
    eligible = set(eligible_words(PROTECTED, VOCAB))
    for seed in range(40):
        noisy = noisy_version(PROTECTED, "p", 0.5, seed, VOCAB)
        assert {t.index for t in noisy.typos} <= eligible
        for keep in ('"quick brown fox"', "'lazy dog'", "`inline code here`", "https://example.com/some/path",
                     "NASA", "FBI", "my_var", "file.txt", "```\nprint the value\n```"):  # fmt: skip
            assert keep in noisy.text, (seed, keep)
        assert all(clean_words[t.index] == t.word for t in noisy.typos)


def test_capitalised_words_at_a_sentence_start_and_in_title_case() -> None:
    text = "Paris is nice. Then we met Rose and Rose said hi.\nSure thing! Really? Yes, The Old Man and the Sea"
    found = eligible_texts(text)
    assert found.count("Rose") == 2
    assert {"Paris", "Then", "Sure", "Really", "Yes", "Old", "Man", "Sea"} <= set(found)
    assert "McDonald" not in eligible_texts("We ate at McDonald today.")  # not Title Case: left alone


def test_non_dictionary_and_non_ascii_words_are_not_eligible() -> None:
    assert eligible_texts("the qwzxv café naïve Zürich is here") == ["the", "is", "here"]


def test_reproducible_and_independent_of_hash_seed() -> None:
    text = "Explain how the water cycle moves water between the oceans, the air and the land over a year."
    first = noisy_version(text, "id-1", 0.2, 7, VOCAB)
    assert first == noisy_version(text, "id-1", 0.2, 7, VOCAB)
    assert first.text != text
    # another seed or key gives other typos (with overwhelming likelihood across a few tries)
    others = {noisy_version(text, "id-1", 0.2, s, VOCAB).text for s in range(8)}
    assert len(others) > 1
    # a key's generator does not depend on Python's hash(): crc32-based
    assert noise.rng_for(7, "id-1", 0.2).random() == noise.rng_for(7, "id-1", 0.2).random()


@pytest.mark.parametrize("rate", [0.05, 0.1, 0.2, 0.5, 1.0])
def test_typo_count_is_max_1_round_r_n(rate: float) -> None:
    text = ("the cat sat on the mat and looked at the bird in the tree near the house " * 3).strip()
    n = len(eligible_words(text, VOCAB))
    noisy = noisy_version(text, "k", rate, 1, VOCAB)
    assert len(noisy.typos) == max(1, round(rate * n)) == typo_count(rate, n)
    assert len({t.index for t in noisy.typos}) == len(noisy.typos)  # never two typos in one word


def test_typo_count_edges() -> None:
    assert typo_count(0.0, 10) == 0
    assert typo_count(0.01, 10) == 1
    assert typo_count(0.5, 0) == 0
    assert typo_count(1.0, 3) == 3
    assert noisy_version("ONLY SHOUTING HERE, BOB", "k", 0.5, 1, VOCAB).typos == ()
    assert noisy_version("the text", "k", 0.0, 1, VOCAB).text == "the text"


def test_each_kind_does_what_it_says() -> None:
    common = common_words()
    rng = random.Random(5)
    for _ in range(200):
        word = rng.choice(["capital", "question", "bright", "mountain", "of", "a", "The", "Water"])
        for kind in applicable_kinds(word, common, allow_word_deletion=True):
            typo = apply_kind(kind, word, rng, common)
            lw, lt = word.lower(), typo.lower()
            if kind == WORD_DELETION:
                assert typo == ""
                continue
            assert lt != lw and typo[0].isupper() == word[0].isupper()
            if kind == SWAP:
                assert sorted(lt) == sorted(lw) and len(lt) == len(lw)
                diff = [i for i in range(len(lw)) if lw[i] != lt[i]]
                assert len(diff) == 2 and diff[1] == diff[0] + 1
            elif kind == DELETION:
                assert len(lw) >= 3 and len(lt) == len(lw) - 1
                assert any(lw[:i] + lw[i + 1 :] == lt for i in range(len(lw)))
            elif kind == INSERTION:
                assert len(lt) == len(lw) + 1
                spots = [i for i in range(len(lt)) if lt[:i] + lt[i + 1 :] == lw]
                assert any(
                    (i > 0 and lt[i] in noise._QWERTY[lt[i - 1]]) or (i + 1 < len(lt) and lt[i] in noise._QWERTY[lt[i + 1]])
                    for i in spots
                )
            elif kind == SUBSTITUTION:
                diff = [i for i in range(len(lw)) if lw[i] != lt[i]]
                assert len(lt) == len(lw) and len(diff) == 1 and lt[diff[0]] in noise._QWERTY[lw[diff[0]]]
            elif kind == DOUBLED:
                assert len(lt) == len(lw) + 1 and any(lt[:i] + lt[i + 1 :] == lw and lt[i] == lt[i - 1] for i in range(1, len(lt)))
            elif kind == REAL_WORD:
                assert lt in common and lt in noise.edits1(lw)


def test_kind_applicability() -> None:
    common = common_words()
    assert DELETION not in applicable_kinds("of", common, allow_word_deletion=True)
    assert SWAP not in applicable_kinds("a", common, allow_word_deletion=True)
    assert SWAP not in applicable_kinds("aa", common, allow_word_deletion=True)
    assert WORD_DELETION not in applicable_kinds("capital", common, allow_word_deletion=False)
    assert REAL_WORD not in applicable_kinds("xylophonist", frozenset(), allow_word_deletion=True)
    assert set(applicable_kinds("capital", common, allow_word_deletion=True)) == set(KINDS)


def test_kinds_are_picked_among_applicable_ones() -> None:
    text = " ".join(["capital mountain question bright river garden"] * 20)
    seen = {t.kind for s in range(5) for t in noisy_version(text, "k", 0.5, s, VOCAB).typos}
    assert seen == set(KINDS)
    # the first word of a sentence is never deleted
    for s in range(30):
        first = [t for t in noisy_version("Capital cities are big. Mountain air is clean.", "k", 1.0, s, VOCAB).typos if t.index in (0, 4)]
        assert all(t.kind != WORD_DELETION for t in first)


def test_real_word_flag() -> None:
    text = "the cat sat on the mat and looked at the bird in the tree near the house " * 4
    typos = [t for s in range(20) for t in noisy_version(text, "k", 0.3, s, VOCAB).typos]
    assert any(t.real_word and t.kind != REAL_WORD for t in typos)  # a char edit that made a word
    for t in typos:
        if t.kind == REAL_WORD:
            assert t.real_word and t.typo.lower() in VOCAB
        elif t.kind == WORD_DELETION:
            assert not t.real_word and t.typo == ""
        else:
            assert t.real_word == (t.typo.lower() in VOCAB)


def test_noisy_text_has_the_typos_in_place() -> None:
    text = "What is the capital of France, and how big is the city?"
    for seed in range(30):
        noisy = noisy_version(text, "k", 0.3, seed, VOCAB)
        words = [m.group() for m in word_spans(text)]
        for t in sorted(noisy.typos, key=lambda t: t.index, reverse=True):
            if t.kind == WORD_DELETION:
                del words[t.index]
            else:
                words[t.index] = t.typo
        assert [m.group() for m in word_spans(noisy.text)] == words
        assert "  " not in noisy.text


def test_inject_with_explicit_generator() -> None:
    out = inject("the cat sat on the mat", 1.0, random.Random(0), VOCAB, common_words())
    assert len(out.typos) == 6
