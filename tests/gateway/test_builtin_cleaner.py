"""``refinement.builtin_cleaner``: the CPU spelling cleaner as the cleaner stage, or as its stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import refining, start_gateways
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

TYPED = "what is the captial of frnace and how big is it"
FIXED = "what is the capital of france and how big is it"


@pytest.fixture(scope="module")
def gateways(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, GatewayProcess]]:
    always = routes(fake.base_url, refinement={"deadline_s": 2.0, "stages": ["cleaner"], "builtin_cleaner": "always"})
    fallback = routes(fake.base_url, fake.base_url, refinement={"deadline_s": 2.0, "stages": ["cleaner"], "builtin_cleaner": "fallback"})
    started = start_gateways(tmp_path_factory, always, fallback)
    yield dict(zip(("always", "fallback"), started))
    for gw in started:
        gw.stop()


def refine(gw: GatewayProcess, prompt: str = TYPED) -> dict[str, Any]:
    response = httpx.post(gw.base_url + "/refine", json={"prompt": prompt}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_always_needs_no_adapter(gateways: dict[str, GatewayProcess]) -> None:
    data = refine(gateways["always"])
    assert data["refined"] == FIXED and data["refinement"] == "cleaner"
    ready = httpx.get(gateways["always"].url + "/ready", timeout=5).json()
    assert ready["adapters"]["cleaner"] == [{"url": "builtin", "up": True}]


def test_fallback_answers_when_the_adapter_fails(gateways: dict[str, GatewayProcess], fake: FakeOpenAI) -> None:
    fake.behave("cleaner", Behaviour(mode="status", status=500))
    data = refine(gateways["fallback"])
    assert data["refined"] == FIXED and data["refinement"] == "cleaner"
    assert data["stages"]["cleaner"]["fallback_from"] == "http_500"


def test_fallback_stays_out_of_the_way_when_the_adapter_answers(gateways: dict[str, GatewayProcess], fake: FakeOpenAI) -> None:
    refining(fake, cleaned="what is the capital of France and how big is it")
    data = refine(gateways["fallback"])
    assert data["refined"] == "what is the capital of France and how big is it"
    assert "fallback_from" not in data["stages"]["cleaner"]
