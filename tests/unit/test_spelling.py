"""The built-in cleaner, by class: fixes typos in context, leaves everything else alone."""

from __future__ import annotations

import pytest

from gateway.refinement.keyboard import OTHER_EDIT, channel, slips
from gateway.refinement.spelling import SpellingCleaner


@pytest.fixture(scope="module")
def cleaner() -> SpellingCleaner:
    return SpellingCleaner()


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("what is the captial of frnace?", "what is the capital of france?"),
        ("Explain recursoin to a begginner.", "Explain recursion to a beginner."),
        ("Tell me a bio fo Nikola Tesla.", "Tell me a bio of Nikola Tesla."),  # a two-letter typo
        ("Hwo many moons does Mars have?", "How many moons does Mars have?"),  # case kept
        ("Teh answer is ofr the teacher.", "The answer is for the teacher."),  # the typo model: ofr is for
        ("How many kilocalolries are in an apple?", "How many kilocalories are in an apple?"),
        ("The elephant is much bigger tan the mouse.", "The elephant is much bigger than the mouse."),
    ],
)
def test_fixes_typos(cleaner: SpellingCleaner, typed: str, meant: str) -> None:
    assert cleaner.correct(typed) == meant


@pytest.mark.parametrize(
    "text",
    [
        "Benni has 12 apples and gives 5 to Niels.",  # names
        "Guido van Rossum wrote Python; Nikola Tesla built coils.",
        "Convert the SVG and the PNG for NASA.",  # acronyms
        "She ran 5 km in 32 min and lifted 40kg.",  # numbers and units
        "Call parse_confg(path) and check `valeu` in https://exmaple.com/docs",  # code, URLs
        'Is "recieve" or "receive" correct? Why is \'definately\' wrong?',  # quoted mentions
        "Explain recieve vs receive in english grammar.",  # discussed without quotes
        "Our neighborhood theater has new colors; the neighbourhood theatre has new colours.",  # both spellings
        "¿Cuál es la diferencia entre el español de España y el de México?",  # another language
    ],
)
def test_leaves_alone(cleaner: SpellingCleaner, text: str) -> None:
    assert cleaner.correct(text) == text
    assert cleaner.corrections(text) == []


def test_corrections_say_where_and_why(cleaner: SpellingCleaner) -> None:
    fixes = cleaner.corrections("It is bigger tan the captial.")
    assert [(f.start, f.old, f.new, f.reason) for f in fixes] == [
        (13, "tan", "than", "real_word"),
        (21, "captial", "capital", "non_word"),
    ]


async def test_runs_as_a_stage(cleaner: SpellingCleaner) -> None:
    result = await cleaner.run("waht is teh time")
    assert result.output == "what is the time" and result.error is None and result.latency_ms >= 0


def test_keyboard_model() -> None:
    assert channel("ofr", "for") == pytest.approx(0.2 / 2)  # one of two possible swaps
    assert channel("frane", "france") == pytest.approx(0.2 / 6)  # one of six letters dropped
    assert channel("frame", "france") == OTHER_EDIT  # two edits
    assert channel("sadio", "radio") == OTHER_EDIT  # r and s are not neighbours
    assert "radio" not in slips("radio") and sum(slips("cat").values()) == pytest.approx(1.0)
