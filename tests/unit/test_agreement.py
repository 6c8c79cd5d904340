"""Number agreement: a noun whose number its determiner rules out is found; grammatical phrases are not."""

from __future__ import annotations

import pytest

from gateway.config.models import SkipGateConfig
from gateway.refinement.agreement import agreement_errors
from gateway.refinement.gate import decide
from gateway.refinement.lexicon import lexicon
from gateway.refinement.ngram import trigram_model
from gateway.refinement.tokens import scan

LEXICON = lexicon()


def found(text: str) -> list[tuple[str, str]]:
    words = scan(text).words
    return [(words[i].text, other) for i, other in agreement_errors(text, words, LEXICON, trigram_model())]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a singular determiner, then a plural noun that heads its phrase
        ("Can you give me a summaries of the meeting?", [("summaries", "summary")]),
        ("She drew an circles on the board.", [("circles", "circle")]),
        ("Write every sentences in the past tense.", [("sentences", "sentence")]),
        ("Add another columns.", [("columns", "column")]),
        ("Done. A photos of the cat, please.", [("photos", "photo")]),
        # ...after an adjective or a number compound
        ("Give me a short descriptions of each planet.", [("descriptions", "description")]),
        ("Write a 500-word essays on climate.", [("essays", "essay")]),
        # a plural quantifier, then a singular noun that heads its phrase
        ("My garden has 12 tree, and most are apples.", [("tree", "trees")]),
        ("How many planet are in the solar system?", [("planet", "planets")]),
        ("We talked to several student.", [("student", "students")]),
        ("Compare two language: Go and Rust.", [("language", "languages")]),
        ("How many moon does Jupiter have?", [("moon", "moons")]),
        # a question's plural subject before a singular verb
        ("Which European painters was famous for water lilies?", [("painters", "painter")]),
    ],
)
def test_disagreement_found(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # noun adjuncts: an -s word followed by its noun, or joined nouns
        "We hired a sales manager and a sports coach.",
        "Open a settings page, then a users table.",
        "Draw a simple customers and orders schema.",
        # singular nouns ending in -s
        "It is a series of tests, a means of escape and a news item.",
        "Take a physics class, a bus to town or a lens for the camera.",
        # quantity phrases and a number compound
        "I ate a few cookies, a lot of grapes, a couple of pears and a dozen eggs.",
        "Explain it to a ten year old on a two hour drive.",
        "Outline a five minute talk on recycling.",
        "It took them every 24-hours to reply.",
        # verbs after a noun or a pronoun
        "A car travels at 60 miles per hour.",
        "When a user logs in with a password, each session starts.",
        "Each corresponds to a column.",
        "Many believe that these include data types.",
        "These date from the 1990s and those work in parallel.",
        # a pronoun and its verb before punctuation: only a preposition makes the next word a noun
        "Explain how each works.",
        "List the tools and describe what each offers.",
        "I know these work. These matter, those count, and few remain.",
        "They are both right, and both equal.",
        # informal but common
        "I hate these kind of bugs.",
        # numbers that are labels, years, units
        "Return the 404 error page with 404 response.",
        "In 2024 people voted, and the two refer to the same thing.",
        "We ran 5 km in 30 minutes.",
        "Use Python 3 features.",
        # an object question: the subject follows the verb
        "Which novels is the author best known for?",
        # an A that is a label, and an a before a line break
        "If package A depends on B, this shape draws a\nOptions: circles",
    ],
)
def test_grammatical_phrases_pass(text: str) -> None:
    assert found(text) == []


def test_gate_refines_with_the_agreement_reason() -> None:
    decision = decide("Tell me about a famous paintings of the Renaissance.", LEXICON, SkipGateConfig())
    assert (decision.refine, decision.reason, decision.tokens) == (True, "agreement", ("paintings→painting",))
    assert decide("Tell me about a famous painting of the Renaissance.", LEXICON, SkipGateConfig()).reason == "clean"
