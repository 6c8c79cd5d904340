"""Runner and report with a scripted backend: which calls are made and what the figures say."""

from __future__ import annotations

import json

import pytest

from gateway.eval import runner
from gateway.eval.backends import BYPASSED, EvalOutcome, outcome_from_json, refine_endpoint
from gateway.eval.prompts import Prompt
from gateway.eval.render import render
from gateway.eval.report import build_report, percentile
from gateway.refinement.dictionary import english_words

P1 = Prompt("p1", "What is the capital of France?", "fact")
P2 = Prompt("p2", "Explain how the water cycle works in detail.", "science", "en")
P3 = Prompt("p3", "Quelle est la capitale de la France ?", "fact", "fr")
PROMPTS = [P1, P2, P3]


class ScriptedBackend:
    """Gate: refines P2's clean text and every noisy text. Stages: restore P1 fully, leave P2 as
    is, and (gate bypassed) turn P1's clean 'capital' into 'capitol'."""

    name = "scripted"
    concurrency = 4

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    async def refine(self, text: str, *, use_gate: bool) -> EvalOutcome:
        self.calls.append((text, use_gate))
        if text == P1.text:
            refined = "What is the capitol of France?"
        elif text in (P2.text, P3.text):
            refined = text
        elif "water" in text or "cycle" in text or "detail" in text:
            refined = text  # a noisy P2: nothing restored
        else:
            refined = P1.text  # a noisy P1: all restored
        stage_ms = {"cleaner": 2.0}
        if not use_gate:
            return EvalOutcome(True, BYPASSED, refined, stage_ms=stage_ms, refine_ms=3.0)
        refine = text not in (P1.text, P3.text)
        reason = "unknown_words" if refine else "clean"
        tokens = ("zz",) if text == P2.text else ()
        return EvalOutcome(
            refine, reason, refined if refine else text, tokens, gate_ms=0.5, stage_ms=stage_ms if refine else {}, refine_ms=3.0
        )


@pytest.fixture(scope="module")
def vocab() -> object:
    return english_words()


async def test_calls_and_figures(vocab: object) -> None:
    jobs = runner.plan(PROMPTS, [0.0, 0.2], seed=1, vocabulary=vocab)
    assert [(j.prompt.id, j.rate, j.bypass) for j in jobs] == [("p1", 0.0, True), ("p1", 0.2, True), ("p2", 0.0, True), ("p2", 0.2, True), ("p3", 0.0, False)]
    backend = ScriptedBackend()
    samples = await runner.run(backend, jobs)
    # gate on for every job; gate bypassed only for P1's clean text (everything else was refined
    # by the gate already, and the non-English prompt never runs without the gate)
    assert sorted(backend.calls) == sorted([(j.text, True) for j in jobs] + [(P1.text, False)])

    report = build_report(samples, PROMPTS, backend="scripted", stages=["cleaner"], seed=1, rates=[0.0, 0.2], elapsed_s=0.1)
    assert report["refinements"] == 6
    assert report["noise_levels"] == [0.0, 0.2]
    clean = report["clean"]
    assert (clean["n"], clean["skipped"]) == (3, 2) and clean["skip_rate"] == pytest.approx(2 / 3)
    assert clean["reasons"] == {"clean": 2, "unknown_words": 1} and clean["tokens"] == {"zz": 1}
    noisy = report["noise"]["0.2"]
    typos = {s.prompt.id: s.typos for s in samples if s.rate}
    assert noisy["n"] == 2 and noisy["no_eligible"] == 0 and noisy["typos"] == len(typos["p1"]) + len(typos["p2"])
    assert (noisy["refined"], noisy["refine_rate"]) == (2, 1.0)
    assert (noisy["clean_skipped"], noisy["refined_clean_skipped"], noisy["refine_rate_clean_skipped"]) == (1, 1, 1.0)
    with_typo = [s for s in samples if s.rate and s.prompt.id == "p1" and any(t.kind != "word_deletion" for t in s.typos)]
    assert (noisy["typo_prompts"], noisy["refined_typo_prompts"]) == (len(with_typo), len(with_typo))

    restoration = report["restoration"]
    assert restoration["all"] == {"n": noisy["typos"], "restored": len(typos["p1"]), "rate": len(typos["p1"]) / noisy["typos"]}
    assert restoration["by_noise"]["0.2"]["all"] == restoration["all"]
    assert sum(restoration[c]["n"] for c in ("non_word", "real_word", "deleted")) == noisy["typos"]

    changed = report["changed"]
    assert changed["by_noise"]["0"] == {"words": 6 + 8, "changed": 1, "rate": 1 / 14}
    assert changed["by_noise"]["0.2"]["changed"] == 0

    latency = report["latency_ms"]
    assert latency["gate"] == {"n": 5, "p50": 0.5, "p99": 0.5}
    assert latency["stages"]["cleaner"]["n"] == 4 and latency["stages"]["cleaner"]["errors"] == 0

    sources = {row["source"]: row for row in report["sources"]}
    assert sources["fact"]["n"] == 2 and sources["fact"]["clean_skip_rate"] == 1.0 and sources["fact"]["restored_rate"] == 1.0
    assert sources["science"]["clean_skip_rate"] == 0.0 and sources["science"]["restored_rate"] == 0.0
    assert sources["science"]["refine_rate"] == {"0.2": 1.0}

    worst = report["worst"]
    assert [e["id"] for e in worst["clean_refined"]] == ["p2"] and worst["clean_refined"][0]["tokens"] == ["zz"]
    assert worst["noisy_skipped"] == []
    assert {e["id"] for e in worst["typos_not_restored"]} == {"p2"}
    assert worst["words_changed"] == [{"id": "p1", "source": "fact", "noise": 0.0, "word": "capital", "output": "capitol"}]

    json.dumps(report)  # serialisable as is
    text = render(report)
    for needle in ("66.7% (2/3)", "100.0% (1/1)", "capital → capitol", "p2 [science] unknown_words: zz", "refine@0.2"):
        assert needle in text


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(map(float, range(101))), 99) == pytest.approx(99.0)


def test_http_response_parsing() -> None:
    assert refine_endpoint("http://h:1") == refine_endpoint("http://h:1/v1/") == "http://h:1/v1/refine"
    body = {
        "refined": "what is the capital",
        "refine_ms": 4.2,
        "gate": {"refine": True, "reason": "unknown_words", "tokens": ["captial"]},
        "stages": {"cleaner": {"latency_ms": 1.5, "output": "x", "accepted": True, "error": None},
                   "paraphraser": {"latency_ms": 3000.0, "output": None, "accepted": False, "error": "timeout"}},  # fmt: skip
    }
    outcome = outcome_from_json(body)
    assert (outcome.refine, outcome.reason, outcome.tokens, outcome.gate_ms) == (True, "unknown_words", ("captial",), None)
    assert outcome.stage_ms == {"cleaner": 1.5, "paraphraser": 3000.0} and outcome.stage_errors == {"paraphraser": "timeout"}
    bypassed = outcome_from_json({"refined": "x", "gate": None, "stages": {}})
    assert (bypassed.refine, bypassed.reason) == (True, BYPASSED)
    older = outcome_from_json({"refined": "x", "gate": {"refine": False, "reason": "clean"}})
    assert (older.refine, older.tokens) == (False, ())


def test_typo_classes() -> None:
    from gateway.eval.noise import Typo
    from gateway.eval.render import class_section
    from gateway.eval.report import CAPITALISED, class_figures, typo_class
    from gateway.eval.runner import Sample
    from gateway.eval.score import score

    assert typo_class(Typo(0, "Tell", "Hell", "real_word", True)) == CAPITALISED
    assert typo_class(Typo(0, "of", "", "word_deletion", False)) == "deleted"
    assert typo_class(Typo(0, "than", "tan", "real_word", True)) == "real_word"
    assert typo_class(Typo(0, "than", "thna", "swap", False)) == "non_word"

    clean_text = "Tell me a bio of Nikola Tesla."
    clean = EvalOutcome(False, "clean", clean_text, gate_ms=0.1)
    p = Prompt("b1", clean_text, "bio")
    cap = Sample(p, 0.1, "Tell me a bio of Nikloa Tesla.", (Typo(5, "Nikola", "Nikloa", "swap", False),),
                 EvalOutcome(False, "clean", "Tell me a bio of Nikloa Tesla."), EvalOutcome(True, BYPASSED, clean_text))  # fmt: skip
    dele = Sample(p, 0.2, "Tell me a bio Nikola Tesla.", (Typo(4, "of", "", "word_deletion", False),),
                  EvalOutcome(False, "clean", "Tell me a bio Nikola Tesla."), EvalOutcome(True, BYPASSED, "Tell me a bio Nikola Tesla."))  # fmt: skip
    samples = [Sample(p, 0.0, clean_text, (), clean, EvalOutcome(True, BYPASSED, clean_text)), cap, dele]
    scores = {id(s): score(p.text, s.bypassed.refined, s.typos) for s in samples if s.bypassed is not None}
    figures = class_figures(samples, scores, 3)
    assert (figures[CAPITALISED]["typos"], figures[CAPITALISED]["restored"], figures[CAPITALISED]["refine_rate"]) == (1, 1, 0.0)
    assert figures[CAPITALISED]["skipped"][0]["typos"] == ["Nikola→Nikloa"]
    assert (figures["deleted"]["restored_rate"], figures["deleted"]["prompts"]) == (0.0, 1)
    assert figures["deleted"]["not_restored"][0]["word"] == "of"
    assert figures["real_word"]["typos"] == 0 and figures["real_word"]["restored_rate"] is None
    text = "\n".join(class_section({"classes": figures}))
    assert "capitalised" in text and "Nikola→Nikloa" in text and "of → ∅ → ∅" in text
