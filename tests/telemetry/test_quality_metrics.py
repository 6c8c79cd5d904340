"""Refinement quality metrics at ``/metrics`` after known traffic: per-stage drift, description
outcomes (by mode), refinement share of time to first byte, shadow results."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.refinement.drift import drift
from gateway.telemetry.metrics import DRIFT_BUCKETS
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes
from tests.telemetry.conftest import CLEAN, CLEANED, DESCRIBED, DIRTY, NO_OTEL_ENV, PARAPHRASED, ROLES, chat, refining, start_gateway, wait_until
from tests.telemetry.test_metrics import scrape, value

SHADOW = {"x-mpr-mode": "shadow"}
GIBBERISH = "Zorblax quimth vrendal skoopy plimth."
UNRELATED = "Completely unrelated words about zebras in the savanna at noon"

Samples = dict  # type: ignore[type-arg]


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, workdir: Path) -> Iterator[GatewayProcess]:
    gw = start_gateway(routes(fake.base_url, fake.base_url), workdir, env=NO_OTEL_ENV)
    try:
        yield gw
    finally:
        gw.stop()


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def stream(gw: GatewayProcess, content: str = DIRTY, headers: dict[str, str] | None = None) -> None:
    body = {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": content}]}
    with httpx.stream("POST", gw.base_url + "/chat/completions", json=body, headers=headers or {}, timeout=10) as r:
        assert r.status_code == 200 and b"[DONE]" in r.read()


def test_stage_drift_and_description_outcomes(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    before = scrape(gateway)
    refining(fake, delay_s=0.0)
    for _ in range(2):
        assert chat(gateway).headers["x-mpr-refinement"] == "describer,paraphraser"
    assert chat(gateway, headers=SHADOW).headers["x-mpr-refinement"] == "shadow;describer,paraphraser"
    for describer in (
        Behaviour(reply=lambda m, b: DIRTY),  # echo
        Behaviour(reply=lambda m, b: GIBBERISH),
        Behaviour(reply=lambda m, b: ""),  # empty
        Behaviour(mode="status", status=500),  # error
    ):
        fake.behave("describer", describer)
        assert chat(gateway).headers["x-mpr-refinement"] == "paraphraser"
    after = scrape(gateway)

    # description outcomes, by the describer verdict's reason and the mode
    for outcome, expected in (("accepted", 2), ("echo", 1), ("gibberish", 1), ("empty", 1), ("error", 1)):
        assert delta(before, after, "mpr_description_outcomes_total", outcome=outcome, mode="apply") == expected, outcome
    assert delta(before, after, "mpr_description_outcomes_total", outcome="accepted", mode="shadow") == 1

    # drift: one observation per verdict that has a drift value, in the bucket of its value
    drifts = {"cleaner": drift(DIRTY, CLEANED), "paraphraser": drift(DIRTY, PARAPHRASED)}
    for stage, observed in drifts.items():
        assert delta(before, after, "mpr_stage_drift_count", stage=stage, mode="apply") == 6
        assert delta(before, after, "mpr_stage_drift_count", stage=stage, mode="shadow") == 1
        assert delta(before, after, "mpr_stage_drift_sum", stage=stage, mode="apply") == pytest.approx(6 * observed)
        for bound in DRIFT_BUCKETS:
            expected = 6 if observed <= bound else 0
            assert delta(before, after, "mpr_stage_drift_bucket", stage=stage, mode="apply", le=str(bound)) == expected, (stage, bound)
    # the describer: accepted (2), echo (drift 0) and gibberish have a drift; empty and error do not
    assert delta(before, after, "mpr_stage_drift_count", stage="describer", mode="apply") == 4
    assert delta(before, after, "mpr_stage_drift_bucket", stage="describer", mode="apply", le="0.02") == 1  # the echo
    described = drift(DIRTY, DESCRIBED)
    assert described > 0.5
    assert delta(before, after, "mpr_stage_drift_bucket", stage="describer", mode="apply", le="0.5") == 1  # still only the echo
    assert delta(before, after, "mpr_stage_drift_bucket", stage="describer", mode="apply", le="+Inf") == 4


def test_shadow_results(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    before = scrape(gateway)
    refining(fake, delay_s=0.0)
    chat(gateway, headers=SHADOW)  # changed
    chat(gateway, content=CLEAN, headers=SHADOW)  # skipped
    chat(gateway)  # apply mode: not a shadow result
    stream(gateway, headers=SHADOW)  # changed, recorded when the shadow run ends
    for role in ROLES:
        fake.behave(role, Behaviour(mode="status", status=500))
    assert chat(gateway, headers=SHADOW).headers["x-mpr-refinement"] == "shadow;fallback;reason=http_500"  # failed
    fake.behave("cleaner", Behaviour(reply=lambda m, b: UNRELATED))
    fake.behave("paraphraser", Behaviour(reply=lambda m, b: UNRELATED))
    fake.behave("describer", Behaviour(reply=lambda m, b: DIRTY))
    assert chat(gateway, headers=SHADOW).headers["x-mpr-refinement"].startswith("shadow;none;rejected=")  # unchanged
    wait_until(lambda: delta(before, scrape(gateway), "mpr_shadow_refinements_total", result="changed") == 2)
    after = scrape(gateway)
    for result, expected in (("changed", 2), ("skipped", 1), ("failed", 1), ("unchanged", 1)):
        assert delta(before, after, "mpr_shadow_refinements_total", result=result) == expected, result


def test_refinement_share_of_time_to_first_byte(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    before = scrape(gateway)
    refining(fake, delay_s=0.3)  # refinement dominates: the target answers at once
    chat(gateway)
    stream(gateway)
    chat(gateway, content=CLEAN)  # apply mode, skipped by the gate: a share near 0
    chat(gateway, headers={"x-mpr-refine": "off"})  # refinement off: no observation
    chat(gateway, headers=SHADOW)  # shadow mode: no observation
    after = scrape(gateway)
    name = "mpr_refinement_ttfb_share"
    assert delta(before, after, f"{name}_count", model="test-model") == 3
    assert delta(before, after, f"{name}_bucket", model="test-model", le="0.5") == 1  # only the skipped one
    assert delta(before, after, f"{name}_bucket", model="test-model", le="1.0") == 3
    assert 1.0 < delta(before, after, f"{name}_sum", model="test-model") <= 2.5
