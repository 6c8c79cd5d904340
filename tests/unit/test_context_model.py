"""CMU's trigram model and what the gate and the cleaner do with it: real-word typos, capitalised
words (sentence starts, titles, names), technical vocabulary, candidates ranked by the sentence."""

from __future__ import annotations

import pytest

from gateway.config.models import SkipGateConfig
from gateway.refinement.context import (
    alternatives,
    mistyped_letters,
    number,
    reads_as_word,
    real_word_errors,
    variant,
)
from gateway.refinement.gate import decide, slip_of_known
from gateway.refinement.lexicon import lexicon
from gateway.refinement.ngram import LOG10_PER_UNIT, OOV_LOG10, START, trigram_model
from gateway.refinement.spelling import SpellingCleaner
from gateway.refinement.technical import TECHNICAL_WORDS
from gateway.refinement.tokens import scan

LEXICON = lexicon()
MODEL = trigram_model()
CONFIG = SkipGateConfig()


def sequence(words: list[str], prev: str | None = None) -> float:
    """log10 P of ``words`` in a row after ``prev``."""
    total, prev2 = 0.0, None
    for word in words:
        total += MODEL.logprob(word, prev, prev2)
        prev2, prev = prev, word
    return total


def test_the_model_ranks_the_right_sentence_first() -> None:
    # pairs a bigram table cannot separate (issue #21)
    assert sequence(["smaller", "than", "the"]) > sequence(["smaller", "tan", "the"]) + 2
    assert sequence(["chased", "the", "mouse"]) > sequence(["chased", "the", "muse"])
    assert sequence(["his", "father"], START) > sequence(["bis", "father"], START) + 2
    assert MODEL.logprob("france", "of", "capital") > MODEL.logprob("frame", "of", "capital") + 1
    assert MODEL.logprob("xqzzy") == OOV_LOG10 and not MODEL.knows("xqzzy") and MODEL.knows("the")
    assert -2 < MODEL.logprob("the") < -1 < MODEL.logprob("the", "of", "capital")
    assert MODEL.raw(["the"]) * LOG10_PER_UNIT == MODEL.logprob("the")


@pytest.mark.parametrize(
    ("text", "typo", "likely"),
    [("The elephant is much bigger tan the mouse.", "tan", "than"),
     ("Tell mel a bio of the first president.", "mel", "me"),
     ("Hell me about the history of the printing press.", "Hell", "tell")],
)  # fmt: skip
def test_real_word_typos_are_found_by_context(text: str, typo: str, likely: str) -> None:
    words = scan(text).words
    assert [(words[i].text, c) for i, c in real_word_errors(words, LEXICON)] == [(typo, likely)]
    assert decide(text, LEXICON, CONFIG).reason == "real_word"


@pytest.mark.parametrize(
    "text",
    ["Her skin has a light tan from the summer.", "Give me a biography of Ibn Battuta, tracing his journeys across Africa.",
     "Which colours do you like best?", "Tell me a bio of Kalki Koechlin.", "She wore a red scarf to the opera last night."],
)  # fmt: skip
def test_fitting_words_are_left_alone(text: str) -> None:
    assert real_word_errors(scan(text).words, LEXICON) == []


def test_suspects_are_tried_wherever_their_window_ranks() -> None:
    words = scan("Explain how both treat perception inn practice and thee rest of the theory.").words
    # no window among the least likely (checked=0): only the suspects' windows are tried, at a higher bar
    assert [(words[i].text, c) for i, c in real_word_errors(words, LEXICON, checked=0)] == [("inn", "in"), ("thee", "the")]
    assert real_word_errors(scan("We stayed at a small inn near the lake.").words, LEXICON, checked=0) == []


def test_mistyped_letters() -> None:
    def found(text: str) -> list[tuple[str, str]]:
        return [(letter.text, c) for letter, c in mistyped_letters(text, scan(text))]

    assert found("Tell me q bio of Ada Lovelace.") == [("q", "a")]
    assert found("Let vectors v and w be orthogonal.") == []  # a variable: "a" reads no better
    assert found("Find q such that q squared is 9.") == []  # written twice: a variable
    assert found("The answer is w.") == []  # no word after it
    assert scan("Tell me s bio.").letters and not scan("It weighs 5 s less.").letters  # a unit after a number


def test_variants_plurals_and_alternatives() -> None:
    assert variant("colours", "colors") and variant("analyse", "analyze") and not variant("tan", "than")
    assert variant("enrol", "enroll") and not variant("tel", "tell") and not variant("for", "four") and not variant("des", "does")
    assert number("journeys", "journey") and number("mug", "mugs") and not number("is", "i")
    found = alternatives("tan", LEXICON, MODEL)
    assert "than" in found and all(MODEL.knows(c) for c in found)


@pytest.mark.parametrize(
    "text",
    ["Tell me a bio of Nikloa Tesla.", "Rank these: The Odl Man and the Sea, Brave New World.",
     "Is The Wiman in White a detective novel?", "Tje capital of France is Paris, right?"],
)  # fmt: skip
def test_typos_in_capitalised_words_refine(text: str) -> None:
    assert decide(text, LEXICON, CONFIG).refine


@pytest.mark.parametrize(
    "text", ["Dev has three apples and buys two more.", "Benni bought 3 notebooks at the store.", "Who is Sadio Mané?"]
)
def test_names_stay_names(text: str) -> None:
    assert not decide(text, LEXICON, CONFIG).refine


@pytest.mark.parametrize(
    ("text", "token"),
    [("Summarise the plot of The Lord of the Rungs for me.", "Rungs→rings"),
     ("Which river flows through the Grand Canon?", "Canon→canyon")],
)  # fmt: skip
def test_a_title_case_word_is_judged_by_its_context(text: str, token: str) -> None:
    # a known word capitalised in a title, one edit from the word the title has (GATE_CONTEXT's title_gain)
    assert decide(text, LEXICON, CONFIG).tokens == (token,)
    assert not decide(text.replace(token.split("→")[0], token.split("→")[1].title()), LEXICON, CONFIG).refine


def test_a_name_after_a_name_is_not_judged_as_a_title() -> None:
    words = scan("Her name is Dr. Elena Fisher, and she leads the lab.").words
    assert real_word_errors(words, LEXICON, title_gain=0.5) == []  # Fisher: after a rare capitalised word
    assert not decide("Dr. Maria Fisher leads the lab and Prof. Anna Hale runs the clinic.", LEXICON, CONFIG).refine


def test_slips_and_number_in_the_gate() -> None:
    # a slip of the finger needs less gain than another edit: a doubled letter makes a rarer word
    inn = "Explain the difference between a list and a tuple inn Python."
    assert decide(inn, LEXICON, CONFIG).tokens == ("inn→in",)
    assert not decide(inn.replace("inn", "in"), LEXICON, CONFIG).refine
    # the same word in the other number is tried, at a higher bar
    words = scan("Write an essays about climate change.").words
    assert real_word_errors(words, LEXICON, number_margin=1.0) == [(2, "essay")]
    assert real_word_errors(words, LEXICON) == []  # without a margin, the other number is not tried


def test_a_known_word_in_an_unlikely_place_is_not_taken_for_an_unknown_one() -> None:
    # P(kazakhstan | capital if) is below OOV_LOG10, yet the model knows the word: it still counts
    assert MODEL.logprob("kazakhstan", "if", "capital") < OOV_LOG10 < MODEL.logprob("kazakhstan")
    assert decide("Name the largest city if Uzbekistan.", LEXICON, CONFIG).tokens == ("if→in",)
    assert not decide("Name the largest city of Uzbekistan.", LEXICON, CONFIG).refine


def test_rare_words_the_model_lacks_one_slip_from_a_common_word() -> None:
    assert decide("Can you tell me wheres the nearest station?", LEXICON, CONFIG).tokens == ("wheres",)
    assert not decide("Can you tell me where the nearest station is?", LEXICON, CONFIG).refine
    assert not decide("Which data structure suits a pushy queue?", LEXICON, CONFIG).refine  # rare, but modelled


def test_slips_of_known_words_and_names() -> None:
    assert slip_of_known("nikloa", LEXICON) == "nikola"
    assert slip_of_known("millicnet", LEXICON) == "millicent"  # a name as rare as 2.7 (KNOWN_NAME_ZIPF 2.0)
    assert decide("The letter was signed by Millicnet Fawcett in 1897.", LEXICON, CONFIG).tokens == ("Millicnet",)
    assert slip_of_known("koechlin", LEXICON) is None
    words = scan("Dev has three apples.").words
    assert not reads_as_word("def", words, 0)  # a name reads better there
    assert reads_as_word("write", scan("Wirte a poem about the sea.").words, 0)


@pytest.mark.parametrize(
    "text",
    ["How do I rebase a branch and rerun pytest?", "Why does lodash debounce fire twice?",
     "What does a struct hold, and where is the vtable?", "How do I list pods with kubectl and pnpm?"],
)  # fmt: skip
def test_technical_vocabulary_is_known_and_never_corrected(text: str) -> None:
    assert not decide(text, LEXICON, CONFIG).refine
    assert SpellingCleaner().correct(text) == text
    assert {"pytest", "kubectl", "rebase", "struct", "lodash"} <= TECHNICAL_WORDS
    assert "aws" not in LEXICON  # one slip from "was": taken for the typo


def test_the_cleaner_ranks_candidates_by_the_sentence() -> None:
    cleaner = SpellingCleaner()
    assert cleaner.correct("what is the captial of frane?") == "what is the capital of france?"
    assert cleaner.correct("The elephant is much bigger tan the mouse.") == "The elephant is much bigger than the mouse."
    assert cleaner.correct("Tell me a bio of Nikloa Tesla.") == "Tell me a bio of Nikola Tesla."
    assert cleaner.correct("How do I run pytets on one file?") == "How do I run pytest on one file?"
    # real-word typos, every word tried: a keyboard slip (a letter dropped) needs less evidence
    assert cleaner.correct("The cat chased the muse around the kitchen.") == "The cat chased the mouse around the kitchen."
    assert cleaner.correct("I have tree apples in my bag.") == "I have three apples in my bag."
    assert cleaner.correct("Tell me s bio of Marie Curie.") == "Tell me a bio of Marie Curie."  # a lone key next to "a"
    assert cleaner.correct("Give me a biography of Ibn Battuta, tracing his journeys across Africa.").endswith(
        "tracing his journeys across Africa.")  # a plural stays a plural  # fmt: skip


def test_keyboard_slips_tested_directly() -> None:
    from gateway.eval.noise import edits1
    from gateway.refinement.keyboard import is_slip, slips

    for word in ("mouse", "three", "not", "capital", "book"):
        table = slips(word)
        assert all(is_slip(typo, word) == (typo in table) for typo in edits1(word))
    assert is_slip("muse", "mouse") and is_slip("tree", "three") and not is_slip("pears", "years")
