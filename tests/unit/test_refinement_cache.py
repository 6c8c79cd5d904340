"""The refinement cache's pure parts: the key, the stored value's round trip, what may be stored,
and the lookup/store edge against the in-process state."""

from __future__ import annotations

import time

import pytest

from gateway.config.models import DescriberConfig, DriftConfig, RefinementConfig, Role, SkipGateConfig
from gateway.refinement.cache_codec import decode_outcome, encode_outcome
from gateway.refinement.cache_key import cache_key, settings_digest, stage_fingerprint
from gateway.refinement.fallback import FallbackStage
from gateway.refinement.gate import GateDecision
from gateway.refinement.outcome_cache import HIT_SUFFIX, OutcomeCache, cacheable
from gateway.refinement.prompts import PromptTemplate
from gateway.refinement.results import MergeResult, RefinementOutcome, StageVerdict
from gateway.refinement.stages import stage_version
from gateway.state.local import LocalState
from gateway.telemetry.metrics import Metrics
from gateway.config.models import AdapterConfig

PROMPT = "whats the captial of frane"
ROLES = (Role.CLEANER, Role.DESCRIBER)
PRINTS = {Role.CLEANER: "vllm:cleaner:aa", Role.DESCRIBER: "vllm:describer:bb", Role.PARAPHRASER: "vllm:paraphraser:cc"}
SETTINGS = settings_digest(RefinementConfig(), "1.0")


def key(text: str = PROMPT, roles: tuple[Role, ...] = ROLES, use_gate: bool = True, prints: dict[Role, str] = PRINTS, settings: str = SETTINGS) -> str:
    return cache_key(text, roles, use_gate, prints, settings)


def adapter(**overrides: object) -> AdapterConfig:
    return AdapterConfig.model_validate({"endpoints": ["http://127.0.0.1:1/v1"], "model": "cleaner-lora", "prompt": "p.md", **overrides})


# -- the key -------------------------------------------------------------------------------------


def test_equal_inputs_give_equal_keys_and_stage_order_does_not_matter() -> None:
    assert key() == key()
    assert key(roles=(Role.DESCRIBER, Role.CLEANER)) == key()


@pytest.mark.parametrize(
    "changed",
    [
        {"text": PROMPT + " "},  # exact text: whitespace too
        {"text": PROMPT.upper()},
        {"roles": (Role.CLEANER,)},
        {"roles": (Role.CLEANER, Role.DESCRIBER, Role.PARAPHRASER)},
        {"use_gate": False},
        {"prints": {**PRINTS, Role.CLEANER: "vllm:cleaner-v2:aa"}},
        {"settings": settings_digest(RefinementConfig(), "1.1")},
        {"settings": settings_digest(RefinementConfig(drift=DriftConfig(max_drift=0.2)), "1.0")},
        {"settings": settings_digest(RefinementConfig(drift=DriftConfig(max_length_ratio=3.0)), "1.0")},
        {"settings": settings_digest(RefinementConfig(describer=DescriberConfig(max_facts=2)), "1.0")},
        {"settings": settings_digest(RefinementConfig(skip_gate=SkipGateConfig(enabled=False)), "1.0")},
        {"settings": settings_digest(RefinementConfig(skip_gate=SkipGateConfig(max_unknown_words=1)), "1.0")},
    ],
)
def test_the_key_changes_with_every_input(changed: dict[str, object]) -> None:
    assert key(**changed) != key()  # type: ignore[arg-type]


def test_a_paraphraser_version_does_not_matter_when_it_does_not_run() -> None:
    assert key(prints={**PRINTS, Role.PARAPHRASER: "vllm:paraphraser:dd"}) == key()


def test_the_key_never_contains_the_prompt() -> None:
    k = key("secret launch codes 1234")
    assert "secret" not in k and "1234" not in k and "launch" not in k
    assert k.startswith("refine:") and len(k) == len("refine:") + 32


def test_settings_that_do_not_shape_outcomes_leave_the_key_alone() -> None:
    assert settings_digest(RefinementConfig(deadline_s=9.0), "1.0") == SETTINGS


def test_a_stage_version_covers_model_template_and_params() -> None:
    template = PromptTemplate("You fix typos.", "{{input}}")
    base = stage_version(adapter(), template)
    assert base.startswith("vllm:cleaner-lora:")
    assert stage_version(adapter(), template) == base
    assert stage_version(adapter(model="cleaner-lora-2"), template) != base
    assert stage_version(adapter(params={"temperature": 0.2, "max_tokens": 256}), template) != base
    assert stage_version(adapter(), PromptTemplate("You fix typos!", "{{input}}")) != base


def test_a_fallback_stage_is_versioned_by_both_of_its_backends() -> None:
    class Standby:
        role = Role.CLEANER

    class Primary:
        role = Role.CLEANER
        fingerprint = "vllm:cleaner:aa"

    assert FallbackStage(Role.CLEANER, Primary(), Standby()).fingerprint == f"fallback(vllm:cleaner:aa,{stage_fingerprint(Standby())})"  # type: ignore[arg-type]
    assert FallbackStage(Role.CLEANER, None, Standby()).fingerprint.startswith("fallback(-,")  # type: ignore[arg-type]


# -- the value -----------------------------------------------------------------------------------

VERDICTS = {
    Role.CLEANER: StageVerdict(Role.CLEANER, "whats the capital of france", True, None, 0.04, 1.0, 12.5),
    Role.DESCRIBER: StageVerdict(Role.DESCRIBER, "France is a country.", False, "gibberish", 0.9, None, 20.0),
}
REFINED = RefinementOutcome(
    PROMPT,
    "whats the capital of france",
    None,
    "cleaner",
    30.0,
    GateDecision(True, "unknown_words", ("captial", "frane"), ("captial", "frane")),
    MergeResult("whats the capital of france", None, (Role.CLEANER,), VERDICTS),
)


def test_an_outcome_round_trips_without_the_prompt_or_the_timing() -> None:
    data = encode_outcome(REFINED)
    assert PROMPT.encode() not in data  # the request brings the prompt back
    back = decode_outcome(data, PROMPT, 0.25, HIT_SUFFIX)
    assert back.original == PROMPT and back.refined == REFINED.refined
    assert back.header == "cleaner;cache=hit" and back.cache == "hit" and back.elapsed_ms == 0.25
    assert back.gate == REFINED.gate and back.merged == REFINED.merged
    assert back.details()["stages"] == REFINED.details()["stages"]


def test_a_skipped_outcome_round_trips() -> None:
    skipped = RefinementOutcome("What is it?", "What is it?", None, "skipped;reason=clean", 0.1, GateDecision(False, "clean"))
    back = decode_outcome(encode_outcome(skipped), "What is it?", 0.01)
    assert (back.refined, back.header, back.gate, back.merged) == ("What is it?", "skipped;reason=clean", skipped.gate, None)


def test_a_description_round_trips() -> None:
    described = RefinementOutcome(PROMPT, PROMPT, "Paris is a city.", "describer", 5.0, None, MergeResult(PROMPT, "Paris is a city.", (Role.DESCRIBER,), {}))
    back = decode_outcome(encode_outcome(described), PROMPT, 0.0)
    assert back.description == "Paris is a city." and back.changed and back.merged is not None
    assert back.merged.applied == (Role.DESCRIBER,)


@pytest.mark.parametrize("data", [b"", b"\x93\x01\x02\x03", b"not msgpack at all"])
def test_a_foreign_value_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_outcome(data, PROMPT, 0.0)


# -- what is stored --------------------------------------------------------------------------------


def test_settled_outcomes_are_cacheable_transient_ones_are_not() -> None:
    assert cacheable(REFINED)
    assert cacheable(RefinementOutcome(PROMPT, PROMPT, None, "skipped;reason=clean", 0.1))
    rejected = RefinementOutcome(PROMPT, PROMPT, None, "none;rejected=cleaner", 1.0, None, MergeResult(PROMPT, None, (), {Role.CLEANER: VERDICTS[Role.DESCRIBER]}))
    assert cacheable(rejected)
    assert not cacheable(RefinementOutcome(PROMPT, PROMPT, None, "fallback;reason=internal_error", 1.0))
    failed = StageVerdict(Role.DESCRIBER, None, False, "error", error="timeout")
    partial = MergeResult(REFINED.refined, None, (Role.CLEANER,), {Role.CLEANER: VERDICTS[Role.CLEANER], Role.DESCRIBER: failed})
    assert not cacheable(RefinementOutcome(PROMPT, REFINED.refined, None, "cleaner", 1.0, None, partial))
    stand_in = StageVerdict(Role.CLEANER, "x", True, fallback_from="http_500")
    assert not cacheable(RefinementOutcome(PROMPT, "x", None, "cleaner", 1.0, None, MergeResult("x", None, (Role.CLEANER,), {Role.CLEANER: stand_in})))


# -- the store edge --------------------------------------------------------------------------------


def counts(metrics: Metrics) -> dict[str, float]:
    return {labels[0]: value for labels, value in metrics.refinement_cache_results.series.items()}


async def test_store_then_lookup_against_local_state() -> None:
    metrics = Metrics(process=False)
    cache = OutcomeCache(LocalState(100), 60.0, metrics)
    assert await cache.lookup("k", PROMPT, time.perf_counter()) is None
    await cache.store("k", REFINED)
    hit = await cache.lookup("k", PROMPT, time.perf_counter())
    assert hit is not None and hit.header == "cleaner;cache=hit" and hit.refined == REFINED.refined
    await cache.store("f", RefinementOutcome(PROMPT, PROMPT, None, "fallback;reason=timeout", 1.0))
    assert await cache.lookup("f", PROMPT, time.perf_counter()) is None
    assert counts(metrics) == {"miss": 2.0, "hit": 1.0}


async def test_a_broken_store_or_entry_counts_as_error_and_never_raises() -> None:
    class Broken(LocalState):
        async def cache_get(self, key: str) -> bytes | None:
            raise ConnectionError("down")

        async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None:
            raise ConnectionError("down")

    metrics = Metrics(process=False)
    cache = OutcomeCache(Broken(), 60.0, metrics)
    assert await cache.lookup("k", PROMPT, time.perf_counter()) is None
    await cache.store("k", REFINED)
    state = LocalState()
    await state.cache_put("k", b"garbage", 60.0)
    assert await OutcomeCache(state, 60.0, metrics).lookup("k", PROMPT, time.perf_counter()) is None
    assert counts(metrics) == {"error": 3.0}


def test_the_cache_is_on_by_default_and_its_ttl_must_be_positive() -> None:
    from pydantic import ValidationError

    assert RefinementConfig().cache.enabled and RefinementConfig().cache.ttl_s == 3600
    with pytest.raises(ValidationError):
        RefinementConfig.model_validate({"cache": {"ttl_s": 0}})
    with pytest.raises(ValidationError):
        RefinementConfig.model_validate({"cache": {"max_entries": 5}})  # the size is state.local_cache_entries
