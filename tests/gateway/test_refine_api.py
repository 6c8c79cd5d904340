"""``POST /v1/refine``: the refinement alone, with the same per-stage details; no target call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import CLEAN, CLEANED, DESCRIBED, DIRTY, PARAPHRASED, refining, start_gateway
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

KEY = "sk-refine"


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gw = start_gateway(tmp_path_factory, routes(fake.base_url, fake.base_url, server={"api_keys": [KEY]}))
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, headers={"authorization": f"Bearer {KEY}"}, timeout=10) as c:
        yield c


def refine(http: httpx.Client, **body: Any) -> tuple[httpx.Response, dict[str, Any]]:
    response = http.post("/refine", json=body)
    assert response.status_code == 200, response.text
    return response, response.json()


def test_refine_returns_the_refined_prompt_and_details(http: httpx.Client, fake: FakeOpenAI) -> None:
    refining(fake)
    response, data = refine(http, prompt=DIRTY)
    assert response.headers["x-mpr-refinement"] == "describer,paraphraser"
    assert float(response.headers["x-mpr-refine-ms"]) >= 0
    assert data["object"] == "mpr.refinement"
    assert data["original"] == DIRTY
    assert data["refined"] == PARAPHRASED
    assert data["description"] == DESCRIBED
    assert data["refinement"] == "describer,paraphraser"
    assert data["gate"] == {"refine": True, "reason": "unknown_words", "tokens": ["captial", "frane"]}
    for role, output in (("cleaner", CLEANED), ("describer", DESCRIBED), ("paraphraser", PARAPHRASED)):
        stage = data["stages"][role]
        assert stage["output"] == output and stage["accepted"] is True and stage["error"] is None
        assert stage["latency_ms"] > 0 and stage["drift"] is not None
    assert fake.requests_for("target-model") == []


def test_refine_with_chosen_stages(http: httpx.Client, fake: FakeOpenAI) -> None:
    refining(fake)
    response, data = refine(http, prompt=DIRTY, stages=["cleaner"])
    assert response.headers["x-mpr-refinement"] == "cleaner"
    assert data["refined"] == CLEANED
    assert set(data["stages"]) == {"cleaner"}
    assert [len(fake.requests_for(r)) for r in ("cleaner", "describer", "paraphraser")] == [1, 0, 0]


def test_refine_a_clean_prompt_is_skipped_unless_the_gate_is_off(http: httpx.Client, fake: FakeOpenAI) -> None:
    refining(fake, cleaned=CLEAN, paraphrased="What is the capital city of France and how big is it?")
    response, data = refine(http, prompt=CLEAN)
    assert response.headers["x-mpr-refinement"] == "skipped;reason=clean"
    assert data["refined"] == CLEAN and data["stages"] == {}
    assert fake.requests == []
    response, data = refine(http, prompt=CLEAN, skip_gate=False)
    assert data["refined"] == "What is the capital city of France and how big is it?"
    assert data["stages"]["cleaner"]["reason"] == "unchanged"
    assert len(fake.requests) == 3


def test_refine_stages_as_a_comma_separated_string(http: httpx.Client, fake: FakeOpenAI) -> None:
    refining(fake)
    response, data = refine(http, prompt=DIRTY, stages="cleaner, describer")
    assert response.headers["x-mpr-refinement"] == "cleaner,describer"
    assert set(data["stages"]) == {"cleaner", "describer"}


def test_refine_reports_a_failed_stage(http: httpx.Client, fake: FakeOpenAI) -> None:
    refining(fake)
    fake.behave("paraphraser", Behaviour(mode="malformed"))
    response, data = refine(http, prompt=DIRTY)
    assert response.headers["x-mpr-refinement"] == "cleaner,describer"
    assert data["stages"]["paraphraser"] == {**data["stages"]["paraphraser"], "accepted": False, "error": "malformed"}
    assert data["refined"] == CLEANED


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({"prompt": DIRTY, "stages": ["cleaner", "summariser"]}, "stages"),
        ({"prompt": DIRTY, "skip_gate": "sometimes"}, "skip_gate"),
        ({"prompt": DIRTY, "model": "test-model"}, "model"),
    ],
)
def test_refine_bad_requests(http: httpx.Client, fake: FakeOpenAI, assert_openai_error: Callable[..., Any], body: dict[str, Any], param: str) -> None:
    error = assert_openai_error(http.post("/refine", json=body), 400, error_type="invalid_request_error")
    assert error["param"] == param
    assert fake.requests == []


def test_refine_bad_json_and_auth(gateway: GatewayProcess, http: httpx.Client, assert_openai_error: Callable[..., Any]) -> None:
    assert_openai_error(http.post("/refine", content=b"{", headers={"content-type": "application/json"}), 400)
    assert_openai_error(httpx.post(gateway.base_url + "/refine", json={"prompt": DIRTY}), 401, code="invalid_api_key")
