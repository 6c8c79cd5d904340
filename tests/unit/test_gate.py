from __future__ import annotations

import pytest

from gateway.config.models import SkipGateConfig
from gateway.refinement.dictionary import english_words
from gateway.refinement.gate import decide

VOCAB = english_words()
CONFIG = SkipGateConfig()


@pytest.mark.parametrize(
    "prompt",
    [
        "What is the capital of France?",
        "Explain how a transformer model uses attention.",
        "Summarise the main causes of the First World War in three bullet points.",
        "Don't use jargon; it's for my grandmother's newsletter.",
        "Compare the HTTP and gRPC protocols for internal APIs.",
        "Call the my_func helper with user_id 42 and explain the result.",
        "See https://example.com/docs for details and explain them.",
    ],
)
def test_clean_prompts_skip(prompt: str) -> None:
    decision = decide(prompt, VOCAB, CONFIG)
    assert not decision.refine, decision
    assert decision.reason == "clean"


@pytest.mark.parametrize(
    ("prompt", "reason"),
    [
        ("what is the captial of frane?", "unknown_words"),
        ("pls explane recursoin", "unknown_words"),
        ("What is the the capital of France?", "doubled_word"),
    ],
)
def test_dirty_prompts_refine(prompt: str, reason: str) -> None:
    decision = decide(prompt, VOCAB, CONFIG)
    assert decision.refine
    assert decision.reason == reason


def test_unknown_words_reported() -> None:
    assert decide("the captial of frane", VOCAB, CONFIG).unknown_words == ("captial", "frane")


def test_tolerance() -> None:
    config = SkipGateConfig(max_unknown_words=1)
    assert not decide("What is the captial of France?", VOCAB, config).refine
    assert decide("What is the captial of Frnace?", VOCAB, config).refine


def test_special_skips() -> None:
    assert decide("   ", VOCAB, CONFIG).reason == "no_text"
    assert decide("x" * (CONFIG.max_prompt_chars + 1), VOCAB, CONFIG).reason == "too_long"
    assert decide("```python\nprint('hi')\n```", VOCAB, CONFIG).reason == "code"
    assert decide("fix this: def foo(x): return x+1", VOCAB, CONFIG).reason == "code"


def test_gate_disabled_always_refines_but_still_bounds_length() -> None:
    config = SkipGateConfig(enabled=False)
    assert decide("What is the capital of France?", VOCAB, config).refine
    assert decide("y" * (config.max_prompt_chars + 1), VOCAB, config).reason == "too_long"


def test_dictionary_is_the_bundled_resource() -> None:
    assert len(VOCAB) > 80_000
    assert "capital" in VOCAB and "France" in VOCAB
    assert "captial" not in VOCAB
