"""Several endpoints per target: least-outstanding-requests balancing, a failed endpoint cooled
down and skipped, one retry on another endpoint when the first refuses the connection.

Three fake peers: ``slow`` and ``good`` (both answer), ``flaky`` (drops every chat connection but
answers health probes). Each scenario has its own target (its own pool) in one gateway; probes
run once after start-up (interval 30 s), so cool-downs here are the pool's own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.gateway.conftest import CLEAN, dead_url, start_gateway, wait_until
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

COOLDOWN_S = 1.0
USER = [{"role": "user", "content": CLEAN}]


@pytest.fixture(scope="module")
def slow() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def good() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def flaky() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(default=Behaviour(mode="reset")) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(slow: FakeOpenAI, good: FakeOpenAI, flaky: FakeOpenAI) -> None:
    for fake in (slow, good, flaky):
        fake.reset()


def target(name: str, endpoints: list[str], cooldown_s: float) -> dict[str, object]:
    return {"name": name, "endpoints": endpoints, "upstream_model": name, "cooldown_s": cooldown_s, "timeout_s": 10,
            "balance": "least_outstanding"}  # affinity (the default) has its own tests: tests/gateway/test_affinity.py


@pytest.fixture(scope="module")
def gateway(slow: FakeOpenAI, good: FakeOpenAI, flaky: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = routes(good.base_url, server={"probe_interval_s": 30})
    config["targets"] = [
        target("lor", [slow.base_url, good.base_url], COOLDOWN_S),
        target("cool", [flaky.base_url, good.base_url], COOLDOWN_S),
        target("retry", [dead_url(), good.base_url], 0),
        target("once", [dead_url(), dead_url(), good.base_url], 0),
        target("nowhere", [dead_url(), dead_url()], 0),
    ]
    gw = start_gateway(tmp_path_factory, config)
    # wait for the one start-up probe round, so that it cannot clear a cool-down mid-test
    wait_until(lambda: all(e["last_probe_age_s"] is not None for e in httpx.get(gw.url + "/ready").json()["targets"]["cool"]))
    yield gw
    gw.stop()


def chat(gateway: GatewayProcess, model: str, **extra: object) -> httpx.Response:
    return httpx.post(gateway.base_url + "/chat/completions", json={"model": model, "messages": USER, **extra}, timeout=10)


def test_least_outstanding_avoids_the_busy_endpoint(gateway: GatewayProcess, slow: FakeOpenAI, good: FakeOpenAI) -> None:
    slow.behave("lor", Behaviour(delay_s=1.0))
    good.behave("lor", Behaviour(delay_s=1.0))
    background = threading.Thread(target=chat, args=(gateway, "lor"))
    background.start()  # the first request goes to the first endpoint and stays in flight
    wait_until(lambda: slow.in_flight + good.in_flight == 1, timeout=3)
    busy, idle = (slow, good) if slow.in_flight else (good, slow)
    idle.behave("lor", Behaviour())
    for _ in range(3):
        assert chat(gateway, "lor").status_code == 200
    background.join(5)
    assert len(busy.requests_for("lor")) == 1
    assert len(idle.requests_for("lor")) == 3  # round-robin would have sent one more to the busy one


async def test_concurrent_requests_spread_evenly(gateway: GatewayProcess, slow: FakeOpenAI, good: FakeOpenAI) -> None:
    for fake in (slow, good):
        fake.behave("lor", Behaviour(delay_s=0.5))
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key="k", max_retries=0, timeout=10) as client:
        await asyncio.gather(*(client.chat.completions.create(model="lor", messages=USER) for _ in range(6)))  # type: ignore[arg-type]
    assert len(slow.requests_for("lor")) == 3
    assert len(good.requests_for("lor")) == 3


def test_failed_endpoint_is_cooled_down_and_skipped(gateway: GatewayProcess, flaky: FakeOpenAI, good: FakeOpenAI) -> None:
    first = chat(gateway, "cool")
    assert first.status_code == 200  # the flaky endpoint dropped it; retried on the good one
    assert len(flaky.requests_for("cool")) == 1
    assert len(good.requests_for("cool")) == 1
    ready = httpx.get(gateway.url + "/ready").json()["targets"]["cool"]
    assert ready[0]["cooling_down"] is True and ready[0]["up"] is False and ready[0]["last_error"]
    assert ready[1]["cooling_down"] is False

    for _ in range(3):  # while it cools down, the flaky endpoint is not even tried
        assert chat(gateway, "cool").status_code == 200
    assert len(flaky.requests_for("cool")) == 1
    assert len(good.requests_for("cool")) == 4

    time.sleep(COOLDOWN_S + 0.2)  # after the cool-down it is back in rotation
    assert chat(gateway, "cool").status_code == 200
    assert len(flaky.requests_for("cool")) == 2
    assert len(good.requests_for("cool")) == 5


@pytest.mark.parametrize("stream", [False, True])
def test_refused_connection_is_retried_on_another_endpoint(gateway: GatewayProcess, good: FakeOpenAI, stream: bool) -> None:
    response = chat(gateway, "retry", stream=stream)
    assert response.status_code == 200, response.text
    assert "x-mpr-refinement" in response.headers
    if stream:
        assert response.text.endswith("data: [DONE]\n\n")
    else:
        assert response.json()["choices"][0]["message"]["content"] == f"echo: {CLEAN}"
    assert len(good.requests_for("retry")) == 1


def test_sdk_never_notices_the_retry(gateway: GatewayProcess, good: FakeOpenAI) -> None:
    with openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0, timeout=10) as client:
        for _ in range(3):
            assert client.chat.completions.create(model="retry", messages=USER).choices[0].message.content == f"echo: {CLEAN}"  # type: ignore[arg-type]
    assert len(good.requests_for("retry")) == 3


def test_only_one_retry(gateway: GatewayProcess, good: FakeOpenAI) -> None:
    response = chat(gateway, "once")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unreachable"
    assert good.requests_for("once") == []


def test_every_endpoint_down_is_502(gateway: GatewayProcess) -> None:
    for stream in (False, True):
        response = chat(gateway, "nowhere", stream=stream)
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_unreachable"
