"""The skip gate's verdict memo (gateway.refinement.verdicts) and its use by the Refiner: a prompt
judged once is not judged again, per tenant partition, within bounds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.config.models import RefinementConfig, Role
from gateway.refinement import pipeline
from gateway.refinement.gate import GateDecision
from gateway.refinement.lexicon import lexicon
from gateway.refinement.results import RefinementOutcome, StageResult
from gateway.refinement.verdicts import MAX_CHARS, GateMemo
from gateway.tenants.keyring import Tenant
from gateway.tenants.meter import Meter, opened

CLEAN = GateDecision(False, "clean")


def test_memo_is_bounded_oldest_first_and_per_partition() -> None:
    memo = GateMemo(max_entries=2)
    memo.put("a", "one", CLEAN)
    memo.put("a", "two", CLEAN)
    memo.put("a", "three", CLEAN)
    assert memo.get("a", "one") is None and memo.get("a", "two") is CLEAN and len(memo) == 2
    assert memo.get("b", "two") is None  # another tenant's partition: its own verdicts
    memo.put("a", "x" * (MAX_CHARS + 1), CLEAN)
    assert memo.get("a", "x" * (MAX_CHARS + 1)) is None  # long prompts are judged every time


def counted_gate(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts the refiner's gate judges from now on (``pipeline.decide``, still the real one)."""
    calls: list[str] = []
    real = pipeline.decide

    def counting(text: str, vocabulary: Any, config: Any) -> GateDecision:
        calls.append(text)
        return real(text, vocabulary, config)

    monkeypatch.setattr(pipeline, "decide", counting)
    return calls


def test_refiner_judges_a_prompt_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counted_gate(monkeypatch)
    refiner = pipeline.Refiner(RefinementConfig(), {}, lexicon())
    prompt = "Explain how a hash table handles collisions in simple terms."

    async def twice() -> list[str]:
        return [(await refiner.refine(prompt)).header for _ in range(2)]

    headers = asyncio.run(twice())
    assert headers == ["skipped;reason=clean"] * 2
    assert calls == [prompt]

    async def as_tenant() -> str:
        opened(Meter(Tenant(name="team-a", subject="s", partition="t0123"), "-"))  # this task's tenant
        return (await refiner.refine(prompt)).header

    assert asyncio.run(as_tenant()) == "skipped;reason=clean"
    assert calls == [prompt, prompt]  # judged again in the tenant's own partition


class _Echo:
    """A stage peer that hands the prompt back unchanged."""

    async def run(self, text: str, headers: dict[str, str] | None = None) -> StageResult:
        return StageResult(Role.CLEANER, output=text)


def test_settle_skips_at_once_and_hands_its_verdict_to_refine(monkeypatch: pytest.MonkeyPatch) -> None:
    """``settle`` answers a skipped prompt without an await; for one the stages must refine, it
    returns the verdict ``refine`` goes on with, so even a prompt too long for the memo is judged once."""
    calls = counted_gate(monkeypatch)
    refiner = pipeline.Refiner(RefinementConfig(stages=[Role.CLEANER]), {Role.CLEANER: _Echo()}, lexicon())
    clean = refiner.settle("Explain how a hash table handles collisions in simple terms.")
    assert isinstance(clean, RefinementOutcome) and clean.header == "skipped;reason=clean"

    typo = "Explian how a hash tabel handles colisions. " * (MAX_CHARS // 40)  # too long to be memoised
    gated = refiner.settle(typo)
    assert isinstance(gated, pipeline.Gated) and gated.gate is not None and gated.gate.refine
    outcome = asyncio.run(refiner.refine(typo, gated=gated))
    assert outcome.gate is gated.gate and not outcome.header.startswith("skipped")
    assert calls.count(typo) == 1
    asyncio.run(refiner.refine(typo))  # without a verdict: judged again (not memoised)
    assert calls.count(typo) == 2
