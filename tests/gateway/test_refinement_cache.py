"""The refinement cache against fake stages: a repeated prompt is refined once and the target gets
the same refined prompt; ``x-mpr-cache: off`` / ``mpr.cache: false`` bypass it; a failed stage's
outcome is not kept; every refining endpoint and shadow mode share it; lookups are counted."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import CLEANED, DIRTY, refining, start_gateway
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gw = start_gateway(tmp_path_factory, routes(fake.base_url, fake.base_url, refinement={"cache": {"enabled": True, "ttl_s": 600}}))
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        yield client


@pytest.fixture
def prompt(fake: FakeOpenAI) -> tuple[str, str]:
    """A prompt no other test sent (the cache outlives tests) and the cleaner's fix of it."""
    n = next(_numbers)
    dirty, cleaned = f"{DIRTY} in {n} words", f"{CLEANED} in {n} words"
    refining(fake, cleaned=cleaned, paraphrased=None, described=None)
    return dirty, cleaned


def chat(http: httpx.Client, text: str, headers: dict[str, str] | None = None, **mpr: Any) -> httpx.Response:
    body = {
        "model": "test-model",
        "messages": [{"role": "user", "content": text}],
        "mpr": {"stages": ["cleaner"], "return_details": True, **mpr},
    }
    return http.post("/chat/completions", json=body, headers=headers or {})


def sent_prompts(fake: FakeOpenAI) -> list[str]:
    return [call.body["messages"][-1]["content"] for call in fake.requests_for("target-model")]


def cache_counts(gateway: GatewayProcess) -> dict[str, float]:
    counts: dict[str, float] = {}
    for line in httpx.get(gateway.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("mpr_refinement_cache_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels.split('"')[1]] = float(value)
    return counts


def test_a_repeated_prompt_is_refined_once(http: httpx.Client, fake: FakeOpenAI, prompt: tuple[str, str]) -> None:
    dirty, cleaned = prompt
    first, second = chat(http, dirty), chat(http, dirty)
    assert first.status_code == second.status_code == 200, second.text
    assert first.headers["x-mpr-refinement"] == "cleaner"
    assert second.headers["x-mpr-refinement"] == "cleaner;cache=hit"
    assert (first.json()["mpr"]["cache"], second.json()["mpr"]["cache"]) == ("miss", "hit")
    assert second.json()["mpr"]["stages"] == first.json()["mpr"]["stages"]  # the verdicts come back too
    assert len(fake.requests_for("cleaner")) == 1
    assert sent_prompts(fake) == [cleaned, cleaned]  # the target is always called, with the same text


def test_whitespace_is_part_of_the_prompt(http: httpx.Client, fake: FakeOpenAI, prompt: tuple[str, str]) -> None:
    dirty, _ = prompt
    chat(http, dirty)
    assert chat(http, dirty + "  ").headers["x-mpr-refinement"] == "cleaner"  # another prompt: refined
    assert len(fake.requests_for("cleaner")) == 2


def test_cache_off_bypasses_it(
    http: httpx.Client, fake: FakeOpenAI, prompt: tuple[str, str], assert_openai_error: Callable[..., dict[str, Any]]
) -> None:
    dirty, _ = prompt
    chat(http, dirty)
    off = chat(http, dirty, headers={"x-mpr-cache": "off"})
    assert off.headers["x-mpr-refinement"] == "cleaner" and off.json()["mpr"]["cache"] == "off"
    assert chat(http, dirty, cache=False).headers["x-mpr-refinement"] == "cleaner"
    assert len(fake.requests_for("cleaner")) == 3
    assert chat(http, dirty).headers["x-mpr-refinement"] == "cleaner;cache=hit"
    assert_openai_error(chat(http, dirty, headers={"x-mpr-cache": "sometimes"}), 400)
    error = assert_openai_error(chat(http, dirty, cache="sometimes"), 400)
    assert error["param"] == "mpr.cache"


def test_a_failed_stage_is_not_cached(http: httpx.Client, fake: FakeOpenAI, prompt: tuple[str, str]) -> None:
    dirty, cleaned = prompt
    fake.behave("cleaner", Behaviour(mode="status", status=429))
    assert chat(http, dirty).headers["x-mpr-refinement"] == "fallback;reason=http_429"
    refining(fake, cleaned=cleaned, paraphrased=None, described=None)  # the adapter is back
    assert chat(http, dirty).headers["x-mpr-refinement"] == "cleaner"  # refined again, then kept
    assert chat(http, dirty).headers["x-mpr-refinement"] == "cleaner;cache=hit"
    assert len(fake.requests_for("cleaner")) == 2
    assert sent_prompts(fake) == [dirty, cleaned, cleaned]


def test_rejected_outcomes_are_cached_skips_never_look(
    http: httpx.Client, gateway: GatewayProcess, fake: FakeOpenAI, prompt: tuple[str, str]
) -> None:
    dirty, _ = prompt
    clean = f"What is the capital of France in {next(_numbers)} words?"
    before = cache_counts(gateway)
    assert chat(http, clean).headers["x-mpr-refinement"] == "skipped;reason=clean"
    assert chat(http, clean).headers["x-mpr-refinement"] == "skipped;reason=clean"  # the gate is cheaper than a lookup
    assert cache_counts(gateway) == before
    refining(fake, cleaned="something else entirely, nothing like the prompt", paraphrased=None, described=None)
    assert chat(http, dirty).headers["x-mpr-refinement"] == "none;rejected=cleaner"
    assert chat(http, dirty).headers["x-mpr-refinement"] == "none;rejected=cleaner;cache=hit"
    assert len(fake.requests_for("cleaner")) == 1
    assert sent_prompts(fake) == [clean, clean, dirty, dirty]


def test_every_refining_endpoint_shares_it(http: httpx.Client, fake: FakeOpenAI, prompt: tuple[str, str]) -> None:
    dirty, cleaned = prompt
    refined = http.post("/refine", json={"prompt": dirty, "stages": ["cleaner"]})
    assert refined.headers["x-mpr-refinement"] == "cleaner" and refined.json()["cache"] == "miss"
    assert http.post("/refine", json={"prompt": dirty, "stages": ["cleaner"]}).json()["cache"] == "hit"
    assert http.post("/refine", json={"prompt": dirty, "stages": ["cleaner"], "cache": False}).json()["cache"] == "off"
    assert chat(http, dirty).headers["x-mpr-refinement"] == "cleaner;cache=hit"
    completion = http.post("/completions", json={"model": "test-model", "prompt": dirty, "mpr": {"stages": ["cleaner"]}})
    assert completion.headers["x-mpr-refinement"] == "cleaner;cache=hit"
    response = http.post("/responses", json={"model": "test-model", "input": dirty, "mpr": {"stages": ["cleaner"]}})
    assert response.status_code == 200, response.text
    assert response.headers["x-mpr-refinement"] == "cleaner;cache=hit"
    assert len(fake.requests_for("cleaner")) == 2  # the first /refine and the one with cache off
    assert fake.requests_for("target-model")[1].body["prompt"] == cleaned


def test_shadow_mode_uses_it_and_forwards_the_original(http: httpx.Client, fake: FakeOpenAI, prompt: tuple[str, str]) -> None:
    dirty, _ = prompt
    shadow = {"x-mpr-mode": "shadow"}
    assert chat(http, dirty, headers=shadow).headers["x-mpr-refinement"] == "shadow;cleaner"
    assert chat(http, dirty, headers=shadow).headers["x-mpr-refinement"] == "shadow;cleaner;cache=hit"
    assert chat(http, dirty).headers["x-mpr-refinement"] == "cleaner;cache=hit"  # apply mode shares the entry
    assert len(fake.requests_for("cleaner")) == 1
    assert sent_prompts(fake)[:2] == [dirty, dirty]


def test_lookups_are_counted(http: httpx.Client, gateway: GatewayProcess, prompt: tuple[str, str]) -> None:
    dirty, _ = prompt
    before = cache_counts(gateway)
    chat(http, dirty)
    chat(http, dirty)
    chat(http, dirty, headers={"x-mpr-cache": "off"})
    after = cache_counts(gateway)
    delta = {result: after.get(result, 0.0) - before.get(result, 0.0) for result in ("hit", "miss", "bypass", "error")}
    assert delta == {"hit": 1.0, "miss": 1.0, "bypass": 1.0, "error": 0.0}
