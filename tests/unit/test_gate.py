"""The skip gate, by class of input: what real traffic holds must skip, typos must refine."""

from __future__ import annotations

import pytest

from gateway.config.models import SkipGateConfig
from gateway.refinement.gate import decide
from gateway.refinement.lexicon import lexicon

LEXICON = lexicon()
CONFIG = SkipGateConfig()


def reason(prompt: str, config: SkipGateConfig = CONFIG) -> str:
    return decide(prompt, LEXICON, config).reason


@pytest.mark.parametrize(
    "prompt",
    [
        # plain questions and instructions
        "What is the capital of France?",
        "Explain how a transformer model uses attention.",
        "Don't use jargon; it's for my grandmother's newsletter.",
        # lettered answer options and single letters
        "Which gas do plants absorb? (A) oxygen (B) carbon dioxide (C) nitrogen (D) helium",
        "What is the worst-case time complexity of quicksort?\nA) O(log n)\nB) O(n)\nC) O(n log n)",
        "In math class (B) is the answer, and function (D) is wrong.",
        # numbers with units, abbreviations
        "Tamika runs 5 km every morning and 8 km on Saturdays; her bag weighs 2.5kg.",
        "A ladder is 9 ft from the wall and 12 ft tall. Mr. Lee asks Dr. Osei for 250 mL at 3:45 p.m.",
        # names, inside and at the start of sentences
        "Benni has 12 apples and gives 5 to Niels. How many does Benni have left?",
        "Tell me a bio of Nikola Tesla and Guido van Rossum.",
        "Oluwaseun bought three notebooks for $4.50 each.",
        # US and UK spellings and inflections
        "Our neighborhood theater painted its colors and the neighbourhood theatre its colours.",
        "She poured 3.5 liters of water, then 2 litres of juice, to organize and organise the party.",
        # typographic apostrophes, quotes and accented letters
        "She’s reading “The Trial” and Schrödinger’s letters to Søren in Kraków.",
        # words a prompt is about are mentions, not typos
        'Is "recieve" or "receive" the correct spelling?',
        "Why is 'definately' so often written for 'definitely'?",
        # code inside prose, identifiers, URLs
        "Call the my_func helper with user_id 42 and explain `df.groupby('id').agg(sum)`.",
        "Why does parse_config(path) raise a KeyError in my useEffect hook?",
        "See https://example.com/docs for details and explain them.",
        # LaTeX and money
        "Solve $x^2 + 3x = 10$ and simplify \\frac{1}{2} of the result.",
        "Each cup costs her $0.35 to make, and she sells it for $1.25.",
        # compounds and technical vocabulary
        "How do I set up a backend and a frontend with microservices?",
    ],
)
def test_clean_prompts_skip(prompt: str) -> None:
    decision = decide(prompt, LEXICON, CONFIG)
    assert not decision.refine, decision
    assert decision.reason == "clean"


@pytest.mark.parametrize(
    "prompt",
    [
        "Quelle est la capitale de la France et pourquoi est-elle si célèbre ?",
        "¿Cuál es la diferencia entre el español de España y el de México?",
        "Napisz krótki list motywacyjny na stanowisko młodszego programisty.",
        "Was ist der Unterschied zwischen einem Prozess und einem Thread?",
    ],
)
def test_other_languages_skip(prompt: str) -> None:
    assert reason(prompt) == "non_english"


@pytest.mark.parametrize(
    ("prompt", "tokens"),
    [
        ("what is the captial of frane?", ("captial", "frane")),
        ("pls explane recursoin", ("explane", "recursoin")),
        ("Teh capital of France is Paris.", ("Teh",)),  # a sentence opener next to a common word
        ("Hwo many moons does Mars have?", ("Hwo",)),
        ("Tell me a bio fo Nikola Tesla.", ("fo",)),  # a two-letter typo
        ("How many kilocalolries are in an apple?", ("kilocalolries",)),
    ],
)
def test_typos_refine_and_say_which(prompt: str, tokens: tuple[str, ...]) -> None:
    decision = decide(prompt, LEXICON, CONFIG)
    assert decision.refine and decision.reason == "unknown_words"
    assert decision.tokens == tokens
    assert decision.as_dict() == {"refine": True, "reason": "unknown_words", "tokens": list(tokens)}


@pytest.mark.parametrize(
    "prompt",
    ["Summsrize the main argument of this essay in two sentences.",  # an instruction verb speech seldom starts with
     "Descirbe the water cycle for a ten-year-old.",
     "Paraphrasse this sentence so that it sounds less formal."],
)  # fmt: skip
def test_mistyped_instruction_verbs_starting_a_prompt_refine(prompt: str) -> None:
    decision = decide(prompt, LEXICON, CONFIG)
    assert decision.refine and decision.reason == "unknown_words" and decision.tokens == (prompt.split()[0],)


@pytest.mark.parametrize(
    "prompt",
    ["RawConfigParser objects do no interpolation at all.",  # an identifier, not a mistyped word
     "Oluwaseun wrote the first draft of the report.",  # a name: no common word one slip away
     "Ollama runs models locally."],  # a product's name: "llama runs" reads only a little better than "John runs"
)  # fmt: skip
def test_unknown_words_starting_a_sentence_that_are_no_typos_skip(prompt: str) -> None:
    assert reason(prompt) == "clean"


@pytest.mark.parametrize(
    ("prompt", "token"),
    [("Which U.S. state is known as the Klone Star State?", "Klone"),  # wordfreq knows Klone, rarely
     ("Tell me the plot of The Curious Incident of the Eog in the Night.", "Eog")],
)  # fmt: skip
def test_rare_capitalised_slips_that_read_as_words_refine(prompt: str, token: str) -> None:
    decision = decide(prompt, LEXICON, CONFIG)
    assert decision.reason == "unknown_words" and decision.tokens == (token,)


@pytest.mark.parametrize(
    "prompt",
    ["Tell me a bio of Rahul Dravid.",  # a name's second part
     "Tell me a bio of Ahn Cheol-soo.",  # a name's first part
     "The first patch was written by Jan van Deen.",  # after a particle
     "Rahul Dravid is a cricketer.", "Write a poem for Assia.", "Dr. Cour will see you now.",
     "Email Dravid the report."],  # not after a determiner: maybe a name
)  # fmt: skip
def test_rare_capitalised_words_in_names_skip(prompt: str) -> None:
    assert reason(prompt) == "clean"


@pytest.mark.parametrize(
    ("prompt", "token"),
    [("Tel me a bio of Marie Curie.", "Tel→tell"), ("What des the acronym NATO stand for?", "des→does")],
)  # fmt: skip
def test_short_words_are_not_spelling_variants(prompt: str, token: str) -> None:
    """``tel``/``tell`` and ``des``/``does`` look like UK/US pairs (``-ll``/``-l``, ``oe``/``e``), but are typos."""
    assert decide(prompt, LEXICON, CONFIG).tokens == (token,)


def test_real_word_typo_found_from_context() -> None:
    decision = decide("The elephant is much bigger tan the mouse.", LEXICON, CONFIG)
    assert decision.refine and decision.reason == "real_word"
    assert decision.tokens == ("tan→than",)
    assert not decide("The elephant is much bigger tan the mouse.", LEXICON, SkipGateConfig(context_check=False)).refine


@pytest.mark.parametrize(
    ("prompt", "tokens"),
    [("Tell me s bio of Marie Curie.", ("s→a",)),  # a lone key next to "a"
     ("Can you write w short poem about autumn leaves?", ("w→a",)),
     # a rare word a slip makes of a very common one is tried wherever its window ranks
     ("Compare the epistemological assumptions of Kantian idealism with the phenomenological method, "
      "and explain how both treat perception inn practice.", ("inn→in",))],
)  # fmt: skip
def test_mistyped_letters_and_suspects_refine(prompt: str, tokens: tuple[str, ...]) -> None:
    decision = decide(prompt, LEXICON, CONFIG)
    assert (decision.reason, decision.tokens) == ("real_word", tokens)


@pytest.mark.parametrize(
    "prompt",
    ["Let vectors v and w be orthogonal.", "If s is the side length of the square, find s squared.",
     "Multiply z by two.", "Given vectors u, v and w, compute the angle."],
)  # fmt: skip
def test_letters_as_variables_skip(prompt: str) -> None:
    assert reason(prompt) == "clean"


def test_doubled_word_refines_but_not_across_punctuation() -> None:
    assert reason("What is the the capital of France?") == "doubled_word"
    assert reason("I said that that was fine.") == "clean"
    assert reason("Evaluate: True and not not ( not False ) is") == "clean"
    assert reason("Crossing (Tt × Tt) gives what ratio?") == "clean"


def test_code_skips_but_code_in_prose_is_left_out() -> None:
    assert reason("```python\nprint('hi')\n```") == "code"
    assert reason("def foo(x):\n    return x + 1\n") == "code"
    # the prose around a code block is still judged
    assert reason("Why does this fial?\n```python\nprint('hi')\n```") == "unknown_words"
    # a bracket puzzle is not code
    assert reason("Complete the rest of the sequence, making sure that the parentheses are closed properly. Input: [ { ( < > ) }") == "clean"


def test_tolerance_and_switches() -> None:
    assert not decide("What is the captial of France?", LEXICON, SkipGateConfig(max_unknown_words=1)).refine
    assert decide("What is the captial of Frnace?", LEXICON, SkipGateConfig(max_unknown_words=1)).refine
    assert reason("   ") == "no_text"
    assert reason("x" * (CONFIG.max_prompt_chars + 1)) == "too_long"
    off = SkipGateConfig(enabled=False)
    assert decide("What is the capital of France?", LEXICON, off).reason == "gate_off"
    assert decide("y" * (off.max_prompt_chars + 1), LEXICON, off).reason == "too_long"
