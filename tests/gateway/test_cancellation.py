"""A client that disconnects cancels the gateway's upstream calls at once: during refinement (the
three stage calls), while waiting for the target, and mid-stream. The fake peer records each
handler cancelled by the gateway closing its connection.

Stage and target timeouts here are long (5-10 s), so a cancellation seen within ~1.5 s can only
come from the client's disconnect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.gateway.conftest import CLEAN, DIRTY, adapters_tree, refining, start_gateway, wait_until
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

QUICK = 1.5  # well under every upstream timeout of this gateway
ROLES = ("cleaner", "describer", "paraphraser")
LONG_TEXT = " ".join(f"word{i}" for i in range(40))


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    slow = {"timeout_s": 5.0}
    config = routes(
        fake.base_url,
        adapters=adapters_tree(fake.base_url, cleaner=slow, describer=slow, paraphraser=slow),
        refinement={"deadline_s": 6.0},
    )
    gw = start_gateway(tmp_path_factory, config)
    yield gw
    gw.stop()


def hanging_stages(fake: FakeOpenAI) -> None:
    for role in ROLES:
        fake.behave(role, Behaviour(mode="hang"))


def give_up_after(gateway: GatewayProcess, seconds: float, body: dict[str, object]) -> None:
    """POST and disconnect when ``seconds`` pass without an answer."""
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.base_url + "/chat/completions", json=body, timeout=httpx.Timeout(5.0, read=seconds))


def test_disconnect_during_refinement_cancels_every_stage(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    hanging_stages(fake)
    give_up_after(gateway, 0.3, {"model": "test-model", "messages": [{"role": "user", "content": DIRTY}]})
    gone = time.monotonic()
    wait_until(lambda: set(ROLES) <= set(fake.cancelled), timeout=QUICK)
    assert time.monotonic() - gone < QUICK
    wait_until(lambda: fake.in_flight == 0, timeout=QUICK)
    time.sleep(0.2)
    assert fake.requests_for("target-model") == [], "the target was called for a client that had gone"


def test_disconnect_during_refinement_of_a_stream_request(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    hanging_stages(fake)
    give_up_after(gateway, 0.3, {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": DIRTY}]})
    wait_until(lambda: set(ROLES) <= set(fake.cancelled), timeout=QUICK)
    time.sleep(0.2)
    assert fake.requests_for("target-model") == []


def test_disconnect_during_v1_refine_cancels_every_stage(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    hanging_stages(fake)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.base_url + "/refine", json={"prompt": DIRTY}, timeout=httpx.Timeout(5.0, read=0.3))
    wait_until(lambda: set(ROLES) <= set(fake.cancelled), timeout=QUICK)


async def test_async_sdk_cancelled_during_refinement(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    hanging_stages(fake)
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key="k", max_retries=0, timeout=10) as client:
        call = client.chat.completions.create(model="test-model", messages=[{"role": "user", "content": DIRTY}])
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(call, 0.3)
        deadline = time.monotonic() + QUICK
        while not set(ROLES) <= set(fake.cancelled) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    assert set(ROLES) <= set(fake.cancelled)


@pytest.mark.parametrize("stream", [False, True])
def test_disconnect_while_waiting_for_the_target_cancels_it(gateway: GatewayProcess, fake: FakeOpenAI, stream: bool) -> None:
    fake.behave("target-model", Behaviour(mode="hang"))
    give_up_after(gateway, 0.3, {"model": "test-model", "stream": stream, "messages": [{"role": "user", "content": CLEAN}]})
    wait_until(lambda: "target-model" in fake.cancelled, timeout=QUICK)
    wait_until(lambda: fake.in_flight == 0, timeout=QUICK)


def test_disconnect_mid_stream_cancels_the_target(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    fake.behave("target-model", Behaviour(chunks=40, chunk_delay_s=0.2))  # ~8 s of streaming
    body = {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": LONG_TEXT}]}
    with httpx.Client(timeout=5) as http:
        with http.stream("POST", gateway.base_url + "/chat/completions", json=body) as response:
            assert response.status_code == 200
            first = next(response.iter_raw())
            assert first.startswith(b"data: ")
        # leaving the block closes the half-read response: the connection is dropped
    gone = time.monotonic()
    wait_until(lambda: "target-model" in fake.cancelled, timeout=QUICK)
    assert time.monotonic() - gone < QUICK
    wait_until(lambda: fake.in_flight == 0, timeout=QUICK)


def test_sdk_stream_closed_early_cancels_the_target(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    refining(fake)
    fake.behave("target-model", Behaviour(chunks=40, chunk_delay_s=0.2))
    with openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0, timeout=10) as client:
        stream = client.chat.completions.create(model="test-model", messages=[{"role": "user", "content": LONG_TEXT}], stream=True)
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
        stream.close()
    wait_until(lambda: "target-model" in fake.cancelled, timeout=QUICK)


def test_gateway_still_serves_after_disconnects(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    refining(fake)
    response = httpx.post(gateway.base_url + "/chat/completions", json={"model": "test-model", "messages": [{"role": "user", "content": DIRTY}]}, timeout=10)
    assert response.status_code == 200
    assert response.headers["x-mpr-refinement"] == "describer,paraphraser"
