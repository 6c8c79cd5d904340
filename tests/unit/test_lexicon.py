"""The lexicon (vocabulary, near misses, bigrams), the language check, context and the disk cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.refinement.cache import cache_key, cached
from gateway.refinement.context import real_word_errors
from gateway.refinement.language import looks_non_english
from gateway.refinement.lexicon import Lexicon, fold, lexicon
from gateway.refinement.tokens import scan

LEXICON = lexicon()


@pytest.mark.parametrize(
    "word",
    ["neighborhood", "neighbourhood", "theater", "theatre", "colors", "liters", "litres", "kg", "Mr",
     "Nikola", "France's", "don’t", "she’s", "Schrödinger", "naïve", "heptagon"],
)  # fmt: skip
def test_knows_words_of_real_prompts(word: str) -> None:
    assert word in LEXICON


@pytest.mark.parametrize("word", ["recieve", "definately", "teh", "captial", "grammer", "ni", "fo"])
def test_common_misspellings_are_not_words(word: str) -> None:
    assert word not in LEXICON


def test_near_misses_and_neighbours() -> None:
    assert LEXICON.near_miss("recieve") == "receive"
    assert LEXICON.near_miss("teh") == "the"
    assert LEXICON.near_miss("heptagon") is None
    assert "than" in LEXICON.neighbours("tan") and "his" in LEXICON.neighbours("bis")
    assert LEXICON.near_misses.zipf("recieve") > 0  # known to wordfreq, one edit from "receive": context decides
    assert LEXICON.composed("microtask") and LEXICON.composed("memoize") and not LEXICON.composed("explane")


def test_bigrams_and_fold() -> None:
    assert LEXICON.bigram("than", "the") > LEXICON.bigram("tan", "the") == 0.0
    assert fold("Schrödinger’s") == "schrodinger's"


def test_language_check() -> None:
    assert looks_non_english(scan("Quelle est la capitale de la France et pourquoi ?").words, LEXICON)
    assert looks_non_english(scan("Was ist der Unterschied zwischen einem Prozess und einem Thread?").words, LEXICON)
    assert not looks_non_english(scan("waht is teh tiem nwo").words, LEXICON)  # typos are not a language
    assert not looks_non_english(scan("Write a bio of Gabriel García Márquez and Søren Kierkegaard.").words, LEXICON)


def test_real_word_errors_need_context() -> None:
    words = scan("The elephant is much bigger tan the mouse.").words
    assert [(words[i].text, c) for i, c in real_word_errors(words, LEXICON)] == [("tan", "than")]
    assert real_word_errors(scan("Her skin has a light tan from the summer.").words, LEXICON) == []


def test_disk_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPR_CACHE_DIR", str(tmp_path))
    builds: list[int] = []

    def build() -> dict[str, int]:
        builds.append(1)
        return {"built": len(builds)}

    key = cache_key(("wordfreq",), (__file__,))
    assert key is not None
    assert cached("thing", key, build, dict) == {"built": 1}
    assert cached("thing", key, build, dict) == {"built": 1} and len(builds) == 1  # read back, not rebuilt
    assert cached("thing", key + "x", build, dict) == {"built": 2}  # a new key rebuilds...
    assert [p.name for p in tmp_path.glob("thing-*.pickle")] == [f"thing-{key}x.pickle"]  # ...and drops the old file
    (tmp_path / f"thing-{key}x.pickle").write_bytes(b"not a pickle")
    assert cached("thing", key + "x", build, dict) == {"built": 3}  # a corrupt file is rebuilt
    monkeypatch.setenv("MPR_CACHE_DIR", "off")
    assert cached("thing", key, build, dict) == {"built": 4}
    assert isinstance(LEXICON, Lexicon)


def test_neighbours_tied_in_frequency_come_in_one_order_in_every_process() -> None:
    # ``sent`` and ``st`` share a Zipf of 5.2: the context check tries the first six neighbours of
    # ``set``, so the order of a tie decides what is tried — it must not follow the string hash
    # (PYTHONHASHSEED), or one prompt gets different gate decisions in different workers
    zipf = LEXICON.table.zipf
    for word in ("set", "tan", "ned", "lat"):
        found = LEXICON.neighbours(word)
        assert found == tuple(sorted(found, key=lambda c: (-zipf(c), c)))
    found = LEXICON.neighbours("set")
    assert zipf("sent") == zipf("st") and found.index("sent") < found.index("st")
