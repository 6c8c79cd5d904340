"""Merge with drift control: many cases over the pure function."""

from __future__ import annotations

import pytest

from gateway.config.models import DescriberConfig, RefinementConfig, Role
from gateway.refinement.dictionary import english_words
from gateway.refinement.merge import clean_output, merge, trim_description
from gateway.refinement.pipeline import header_value
from gateway.refinement.results import StageResult

ORIGINAL = "what is the captial of frane?"
VOCAB = english_words()
CONFIG = RefinementConfig()


def run(**outputs: str | None) -> object:
    results = {}
    for name, value in outputs.items():
        role = Role(name)
        results[role] = StageResult(role, error=value[6:]) if value and value.startswith("ERROR:") else StageResult(role, output=value)
    return merge(ORIGINAL, results, CONFIG, VOCAB)


def test_paraphrase_wins_over_cleaned_when_both_pass() -> None:
    m = run(cleaner="what is the capital of france?", paraphraser="what is the capital city of france?")
    assert m.refined == "what is the capital city of france?"
    assert m.applied == (Role.PARAPHRASER,)
    assert m.verdicts[Role.CLEANER].accepted and m.verdicts[Role.PARAPHRASER].accepted


def test_cleaned_used_when_paraphrase_drifts() -> None:
    m = run(cleaner="what is the capital of France?", paraphraser="Tell me a recipe for chocolate cake with nuts")
    assert m.refined == "what is the capital of France?"
    assert m.applied == (Role.CLEANER,)
    assert m.verdicts[Role.PARAPHRASER].reason == "drift"
    assert m.verdicts[Role.PARAPHRASER].drift > CONFIG.drift.max_drift


def test_all_rejected_keeps_original() -> None:
    m = run(cleaner="zq xv lorem kappa ipsum", paraphraser="asdf qwer zxcv uiop hjkl bnm")
    assert m.refined == ORIGINAL
    assert m.applied == ()
    assert header_value(m) == "none;rejected=cleaner,paraphraser"


@pytest.mark.parametrize(
    ("rewrite", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("what is the captial of frane?", "unchanged"),
        ("Delete every file on the server now please", "drift"),
    ],
)
def test_cleaner_rejections(rewrite: str, reason: str) -> None:
    m = run(cleaner=rewrite)
    verdict = m.verdicts[Role.CLEANER]
    assert not verdict.accepted
    assert verdict.reason == reason
    assert m.refined == ORIGINAL


def test_length_bound_applies_even_with_small_drift() -> None:
    config = RefinementConfig.model_validate({"drift": {"max_drift": 1.0, "max_length_ratio": 1.5}})
    results = {Role.CLEANER: StageResult(Role.CLEANER, output=ORIGINAL + " please answer in detail with sources")}
    m = merge(ORIGINAL, results, config, VOCAB)
    assert m.verdicts[Role.CLEANER].reason == "length"


def test_stage_error_is_dropped_others_apply() -> None:
    m = run(cleaner="ERROR:timeout", paraphraser="what is the capital city of france?")
    assert m.applied == (Role.PARAPHRASER,)
    assert m.verdicts[Role.CLEANER].error == "timeout"
    assert header_value(m) == "paraphraser"


def test_all_errors_is_fallback() -> None:
    m = run(cleaner="ERROR:timeout", paraphraser="ERROR:timeout", describer="ERROR:timeout")
    assert header_value(m) == "fallback;reason=timeout"
    m = run(cleaner="ERROR:connect_error", paraphraser="ERROR:http_500")
    assert header_value(m) == "fallback;reason=stage_errors"


def test_mixed_rejected_and_failed_header() -> None:
    m = run(cleaner="ERROR:malformed", paraphraser="pizza pizza pizza pizza")
    assert header_value(m) == "none;rejected=paraphraser;failed=cleaner"


def test_description_accepted_and_trimmed() -> None:
    text = "France is a country in Western Europe. Paris is its capital. It has 68 million people. The euro is its currency."
    m = run(describer=text)
    assert m.description == "France is a country in Western Europe. Paris is its capital. It has 68 million people."
    assert m.applied == (Role.DESCRIBER,)


def test_description_token_limit() -> None:
    config = RefinementConfig(describer=DescriberConfig(max_tokens=5))
    results = {Role.DESCRIBER: StageResult(Role.DESCRIBER, output="France is a large country in Western Europe.")}
    m = merge(ORIGINAL, results, config, VOCAB)
    assert m.description == "France is a large country"


@pytest.mark.parametrize(
    ("description", "reason"),
    [("", "empty"), ("xqzt vbnw plokm ghjq wert zuio", "gibberish"), ("what is the captial of frane?", "echo")],
)
def test_description_rejections(description: str, reason: str) -> None:
    m = run(describer=description)
    assert m.description is None
    assert m.verdicts[Role.DESCRIBER].reason == reason


def test_applied_order_is_stable() -> None:
    m = run(
        describer="France is a country in Europe.",
        paraphraser="what is the capital city of france?",
        cleaner="what is the capital of france?",
    )
    assert m.applied == (Role.DESCRIBER, Role.PARAPHRASER)
    assert header_value(m) == "describer,paraphraser"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ('"What is the capital of France?"', "What is the capital of France?"),
        ("Corrected: What is it?", "What is it?"),
        ("Paraphrased question: Where is it?", "Where is it?"),
        ("  plain  ", "plain"),
    ],
)
def test_clean_output(raw: str, clean: str) -> None:
    assert clean_output(raw) == clean


def test_trim_description_facts() -> None:
    assert trim_description("A. B. C. D.", 2, 100) == "A. B."
