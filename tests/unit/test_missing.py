"""Missing words: a function word left out is found where written English never leaves one out; fluent
text, function words named as code, variables and headline questions are left alone."""

from __future__ import annotations

import pytest

from gateway.config.models import SkipGateConfig
from gateway.refinement.gate import decide
from gateway.refinement.lexicon import lexicon
from gateway.refinement.missing import missing_words
from gateway.refinement.tokens import scan


def found(text: str) -> list[str]:
    return missing_words(text, scan(text).words)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a determiner or possessive right before a preposition or conjunction
        ("What is the of Norway?", ["the of"]),
        ("Describe his childhood and his with the painter Frida Kahlo.", ["his with"]),
        ("Give me a of Ada Lovelace, in three paragraphs.", ["a of"]),
        ("What sits between the and the stack in memory?", ["the and"]),
        ("Name a film, an that won an award.", ["an that"]),
        ("Give me a about the sea, in rhyme.", ["a about"]),
        # a determiner right before the end of a sentence, or of the text
        ("Which planet is closest to the? I forget.", ["the<end>"]),
        ("who painted the", ["the<end>"]),
        # a direct question with no auxiliary before its subject
        ("How I revert a merge commit that was already pushed?", ["How I…?"]),
        ("What it print when run? Explain.", ["What it…?"]),
        ("How many points she score in the final?", ["How many points she…?"]),
        ("Why it so slow on large inputs?", ["Why it…?"]),
    ],
)
def test_a_missing_word_is_found(text: str, expected: list[str]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of Norway?",
        "Describe his childhood and his friendship with the painter Frida Kahlo.",
        "Provide her with the tools she needs.",  # her: also an object pronoun
        "Write a poem about the sea, in rhyme.",
        # a hyphenated word, a function word named as code, his or her
        "Explain the so-called butterfly effect.",
        "When should I use the with statement in Python?",
        "The and operator short-circuits; what does the or keyword do?",
        "Each student brings his or her own laptop.",
        "Compare my and your results, then our and their timings.",
        "Show me the before and after photos, and the for and against arguments.",
        # a lone letter that is a variable or a label
        "Map a to b and c to d.",
        "Divide a by b, then turn a into a list.",
        "Section A of the form asks for an address.",
        "Replace a with b in the string.",
        "In part a of the exercise, what is the limit?",
        "Can I get enough vitamin a from carrots?",
        # a compound written without its hyphens; a wh-word used as a noun
        "Give an in depth explanation of monads.",
        "What is the after party dress code?",
        "Can I take an over the counter painkiller with ibuprofen?",
        "Explain the why behind each step.",
        # a function word named as code or grammar, unquoted
        "Explain the for each loop in Java.",
        "Draw the and gate's truth table.",
        "Should I use a or an?",
        "What's the difference between your and you're?",
        "What is the difference between a, an and the?",
        # a determiner that is a pronoun, or one named in quotes
        "Whose book is this? Is it his?",
        'Is "the" an article?',
        # questions with their auxiliary, embedded questions, headline questions
        "How do I revert a merge commit that was already pushed?",
        "What does it print when run?",
        "How many points did she score in the final?",
        "Why you should learn Rust in 2025?",
        "How I met your mother is a sitcom. Who created it?",
        "How I learned to code\n\nWhat should a beginner read first?",  # a title line, then the question
        "What time is it in Tokyo?",
        "Which one do you prefer?",
        "How long have you been waiting?",
        "When I run pip install, why does it say permission denied?",
        "What I want is a regex for emails, can you write one?",
        "How it works under the hood?",
        "What about you and your team?",
        "How you doing?",
        # a sentence left open on purpose, an ellipsis
        "Complete this sentence: The cat sat on the",
        "Is it the... the one with the red cover?",
    ],
)
def test_fluent_text_is_left_alone(text: str) -> None:
    assert found(text) == []


def test_the_gate_refines_a_prompt_missing_a_word_and_says_why() -> None:
    decision = decide("What is the of Norway?", lexicon(), SkipGateConfig())
    assert (decision.refine, decision.reason, decision.tokens) == (True, "missing_word", ("the of",))
    assert not decide("What is the capital of Norway?", lexicon(), SkipGateConfig()).refine
