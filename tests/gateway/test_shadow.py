"""Shadow mode: the gateway refines beside the target call but forwards the original request;
``x-mpr-refinement`` says what apply mode would have done. Config-level, per-target and
per-request shadow, streaming and not; no refinement latency on a stream's first byte;
cancellation with the client; bad ``x-mpr-mode`` values."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import (
    CLEAN,
    DESCRIBED,
    DIRTY,
    PARAPHRASED,
    adapters_tree,
    refining,
    start_gateways,
    stop_gateways,
    wait_until,
)
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

SLOW_STAGE_S = 1.0


@pytest.fixture(scope="module")
def gateways(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, GatewayProcess]]:
    """``apply``: the default mode, with a ``shadow-model`` target in shadow mode. ``shadow``:
    shadow by config, with an ``apply-model`` target back in apply mode. ``slow``: shadow by
    config, stage timeouts and deadline long enough for stages that take a second."""
    apply = routes(fake.base_url, fake.base_url)
    apply["targets"].append({"name": "shadow-model", "endpoints": [fake.base_url], "refinement_mode": "shadow"})
    apply["targets"].append({"name": "plain-model", "endpoints": [fake.base_url]})  # name sent upstream as is
    shadow = routes(fake.base_url, fake.base_url, refinement={"mode": "shadow"})
    shadow["targets"].append({"name": "apply-model", "endpoints": [fake.base_url], "refinement_mode": "apply"})
    shadow["targets"].append({"name": "plain-model", "endpoints": [fake.base_url]})
    slow = routes(
        fake.base_url,
        adapters=adapters_tree(fake.base_url, **{r: {"timeout_s": 5.0} for r in ("cleaner", "describer", "paraphraser")}),
        refinement={"mode": "shadow", "deadline_s": 5.0},
    )
    gws = start_gateways(tmp_path_factory, apply, shadow, slow)
    yield dict(zip(("apply", "shadow", "slow"), gws))
    stop_gateways(gws)


def post(gw: GatewayProcess, body: dict[str, Any], headers: dict[str, str] | None = None, timeout: float = 15) -> httpx.Response:
    return httpx.post(gw.base_url + "/chat/completions", json=body, headers=headers or {}, timeout=timeout)


def ask(gw: GatewayProcess, model: str = "test-model", prompt: str = DIRTY, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
    response = post(gw, {"model": model, "messages": [{"role": "user", "content": prompt}], **body}, headers)
    assert response.status_code == 200, response.text
    return response


def target_calls(fake: FakeOpenAI, upstream: str = "target-model") -> list[Any]:
    return fake.requests_for(upstream)


def the_target_call(fake: FakeOpenAI, upstream: str = "target-model") -> Any:
    calls = target_calls(fake, upstream)
    assert len(calls) == 1, calls
    return calls[0]


def assert_original_forwarded(fake: FakeOpenAI, prompt: str = DIRTY, upstream: str = "target-model") -> None:
    call = the_target_call(fake, upstream)
    assert call.body["messages"] == [{"role": "user", "content": prompt}]
    assert "mpr" not in call.body


def scrape(gw: GatewayProcess) -> str:
    return httpx.get(gw.url + "/metrics", timeout=5).text


def shadow_count(gw: GatewayProcess, result: str) -> float:
    for line in scrape(gw).splitlines():
        if line.startswith(f'mpr_shadow_refinements_total{{result="{result}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- config-level shadow --------------------------------------------------------------------------


def test_config_shadow_forwards_the_original_bytes_and_reports_the_refinement(gateways: dict[str, GatewayProcess], fake: FakeOpenAI) -> None:
    refining(fake)
    raw = json.dumps({"model": "plain-model", "temperature": 0.25, "messages": [{"role": "user", "content": DIRTY}]}, separators=(", ", ": "))
    response = httpx.post(gateways["shadow"].base_url + "/chat/completions", content=raw.encode(), headers={"content-type": "application/json"}, timeout=15)
    assert response.status_code == 200, response.text
    assert response.headers["x-mpr-refinement"] == "shadow;describer,paraphraser"
    assert float(response.headers["x-mpr-refine-ms"]) > 0
    call = the_target_call(fake, "plain-model")
    assert call.raw == raw.encode()  # byte for byte: nothing was re-encoded
    assert response.json()["choices"][0]["message"]["content"] == f"echo: {DIRTY}"
    # the stages did run
    assert {r.body["model"] for r in fake.requests} >= {"cleaner", "describer", "paraphraser"}


def test_config_shadow_with_a_renamed_model_keeps_the_messages(gateways: dict[str, GatewayProcess], fake: FakeOpenAI) -> None:
    refining(fake)
    response = ask(gateways["shadow"])
    assert response.headers["x-mpr-refinement"] == "shadow;describer,paraphraser"
    assert_original_forwarded(fake)
    assert the_target_call(fake).body["model"] == "target-model"


def test_shadow_details_say_what_would_have_been_sent(gateways: dict[str, GatewayProcess], fake: FakeOpenAI) -> None:
    refining(fake)
    response = ask(gateways["shadow"], mpr={"return_details": True})
    mpr = response.json()["mpr"]
    assert mpr["mode"] == "shadow"
    assert mpr["original"] == DIRTY and mpr["refined"] == PARAPHRASED and mpr["description"] == DESCRIBED
    assert mpr["refinement"] == "describer,paraphraser"
    assert set(mpr["stages"]) == {"cleaner", "describer", "paraphraser"}
    assert_original_forwarded(fake)


@pytest.mark.parametrize(
    ("prompt", "setup", "header"),
    [
        (CLEAN, lambda fake: None, "shadow;skipped;reason=clean"),
        (DIRTY, lambda fake: [fake.behave(r, Behaviour(mode="status", status=500)) for r in ("cleaner", "describer", "paraphraser")], "shadow;fallback;reason=http_500"),
        (DIRTY, lambda fake: [fake.behave(r, Behaviour(mode="hang")) for r in ("cleaner", "describer", "paraphraser")], "shadow;fallback;reason=timeout"),
    ],
    ids=["skipped", "every_stage_failed", "every_stage_timed_out"],
)
def test_shadow_header_for_skips_and_failures(
    gateways: dict[str, GatewayProcess], fake: FakeOpenAI, prompt: str, setup: Callable[[FakeOpenAI], Any], header: str
) -> None:
    setup(fake)
    response = ask(gateways["shadow"], prompt=prompt)
    assert response.headers["x-mpr-refinement"] == header
    assert response.json()["choices"][0]["message"]["content"] == f"echo: {prompt}"  # failures never touch the answer
    assert_original_forwarded(fake, prompt)


def test_shadow_on_a_stream_says_pending_and_forwards_the_original(gateways: dict[str, GatewayProcess], fake: FakeOpenAI) -> None:
    refining(fake)
    body = {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": DIRTY}]}
    with httpx.stream("POST", gateways["shadow"].base_url + "/chat/completions", json=body, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["x-mpr-refinement"] == "shadow;pending"
        assert float(response.headers["x-mpr-refine-ms"]) == 0.0
        raw = response.read()
    assert raw.endswith(b"data: [DONE]\n\n")
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content", "")
        for line in raw.decode().splitlines()
        if line.startswith("data: {")
    )
    assert text == f"echo: {DIRTY}"
    assert_original_forwarded(fake)


# -- per-target and per-request shadow ------------------------------------------------------------


def test_a_target_in_shadow_mode_on_an_apply_gateway(gateways: dict[str, GatewayProcess], fake: FakeOpenAI) -> None:
    refining(fake)
    response = ask(gateways["apply"], model="shadow-model")
    assert response.headers["x-mpr-refinement"] == "shadow;describer,paraphraser"
    assert_original_forwarded(fake, upstream="shadow-model")
    fake.reset()
    refining(fake)
    applied = ask(gateways["apply"])  # the other target still applies
    assert applied.headers["x-mpr-refinement"] == "describer,paraphraser"
    assert the_target_call(fake).body["messages"][-1]["content"] == PARAPHRASED


def test_a_target_back_in_apply_mode_on_a_shadow_gateway(gateways: dict[str, GatewayProcess], fake: FakeOpenAI) -> None:
    refining(fake)
    response = ask(gateways["shadow"], model="apply-model")
    assert response.headers["x-mpr-refinement"] == "describer,paraphraser"
    assert the_target_call(fake, "apply-model").body["messages"][-1]["content"] == PARAPHRASED


@pytest.mark.parametrize(
    ("headers", "mpr", "expected"),
    [
        ({"x-mpr-mode": "shadow"}, None, "shadow"),
        ({"x-mpr-mode": "SHADOW"}, None, "shadow"),
        ({}, {"mode": "shadow"}, "shadow"),
        ({"x-mpr-mode": "apply"}, {"mode": "shadow"}, "shadow"),  # the body wins
        ({"x-mpr-mode": "shadow"}, {"mode": "apply"}, "apply"),
    ],
)
def test_per_request_mode_on_an_apply_gateway(
    gateways: dict[str, GatewayProcess], fake: FakeOpenAI, headers: dict[str, str], mpr: dict[str, Any] | None, expected: str
) -> None:
    refining(fake)
    response = ask(gateways["apply"], headers=headers, **({"mpr": mpr} if mpr is not None else {}))
    if expected == "shadow":
        assert response.headers["x-mpr-refinement"] == "shadow;describer,paraphraser"
        assert_original_forwarded(fake)
    else:
        assert response.headers["x-mpr-refinement"] == "describer,paraphraser"
        assert the_target_call(fake).body["messages"][-1]["content"] == PARAPHRASED


def test_per_request_apply_on_a_shadow_gateway(gateways: dict[str, GatewayProcess], fake: FakeOpenAI) -> None:
    refining(fake)
    response = ask(gateways["shadow"], headers={"x-mpr-mode": "apply"})
    assert response.headers["x-mpr-refinement"] == "describer,paraphraser"
    assert the_target_call(fake).body["messages"][-1]["content"] == PARAPHRASED


def test_per_request_shadow_on_a_stream(gateways: dict[str, GatewayProcess], fake: FakeOpenAI) -> None:
    refining(fake)
    body = {"model": "plain-model", "stream": True, "messages": [{"role": "user", "content": DIRTY}]}
    raw = json.dumps(body).encode()
    headers = {"x-mpr-mode": "shadow", "content-type": "application/json"}
    with httpx.stream("POST", gateways["apply"].base_url + "/chat/completions", content=raw, headers=headers, timeout=10) as response:
        assert response.headers["x-mpr-refinement"] == "shadow;pending"
        assert response.read().endswith(b"data: [DONE]\n\n")
    # the client's bytes, plus the usage request the tenant accounting adds to every stream (docs/tenants.md)
    assert the_target_call(fake, "plain-model").raw == raw[:-1] + b',"stream_options":{"include_usage":true}}'


def test_refinement_off_wins_over_shadow(gateways: dict[str, GatewayProcess], fake: FakeOpenAI) -> None:
    refining(fake)
    response = ask(gateways["shadow"], headers={"x-mpr-refine": "off"})
    assert response.headers["x-mpr-refinement"] == "off"
    assert not fake.requests_for("cleaner")
    assert_original_forwarded(fake)


@pytest.mark.parametrize(
    ("headers", "mpr", "param"),
    [
        ({"x-mpr-mode": "dry-run"}, None, "x-mpr-mode"),
        ({}, {"mode": "later"}, "mpr.mode"),
        ({}, {"mode": 1}, "mpr.mode"),
    ],
)
def test_bad_mode_is_a_400_in_openai_shape(
    gateways: dict[str, GatewayProcess],
    fake: FakeOpenAI,
    assert_openai_error: Callable[..., dict[str, Any]],
    headers: dict[str, str],
    mpr: dict[str, Any] | None,
    param: str,
) -> None:
    body: dict[str, Any] = {"model": "test-model", "messages": [{"role": "user", "content": DIRTY}]}
    if mpr is not None:
        body["mpr"] = mpr
    error = assert_openai_error(post(gateways["apply"], body, headers), 400, error_type="invalid_request_error")
    assert error["param"] == param
    assert "shadow" in error["message"]
    assert not fake.requests  # nothing went upstream


# -- latency ------------------------------------------------------------------------------------


def test_shadow_adds_no_refinement_latency_to_a_streams_first_byte(gateways: dict[str, GatewayProcess], fake: FakeOpenAI) -> None:
    gw = gateways["slow"]
    refining(fake, delay_s=SLOW_STAGE_S)
    before = shadow_count(gw, "changed")
    body = {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": DIRTY}]}
    started = time.monotonic()
    with httpx.stream("POST", gw.base_url + "/chat/completions", json=body, timeout=10) as response:
        chunks = response.iter_raw()
        first = next(chunks)
        first_byte_s = time.monotonic() - started
        assert first.startswith(b"data: ")
        assert response.headers["x-mpr-refinement"] == "shadow;pending"
        rest = b"".join(chunks)
    assert rest.endswith(b"data: [DONE]\n\n")
    # a generous margin: the stages alone take a full second
    assert first_byte_s < SLOW_STAGE_S / 2, first_byte_s
    assert_original_forwarded(fake)
    # the refinement still finishes after the stream, and is recorded
    wait_until(lambda: shadow_count(gw, "changed") == before + 1, timeout=SLOW_STAGE_S + 4)


def test_non_streaming_shadow_waits_for_the_max_not_the_sum(gateways: dict[str, GatewayProcess], fake: FakeOpenAI) -> None:
    gw = gateways["slow"]
    refining(fake, delay_s=SLOW_STAGE_S)
    fake.behave("target-model", Behaviour(delay_s=SLOW_STAGE_S))
    started = time.monotonic()
    response = ask(gw)
    elapsed = time.monotonic() - started
    assert response.headers["x-mpr-refinement"] == "shadow;describer,paraphraser"
    assert float(response.headers["x-mpr-refine-ms"]) >= SLOW_STAGE_S * 1000
    assert SLOW_STAGE_S <= elapsed < 1.7 * SLOW_STAGE_S, elapsed  # the sum would be 2 s
    target_at = the_target_call(fake).at
    stage_at = min(r.at for r in fake.requests if r.body["model"] in ("cleaner", "describer", "paraphraser"))
    assert abs(target_at - stage_at) < 0.3 * SLOW_STAGE_S  # started together


# -- cancellation -------------------------------------------------------------------------------


def test_a_client_leaving_a_stream_cancels_the_shadow_refinement(gateways: dict[str, GatewayProcess], fake: FakeOpenAI) -> None:
    for role in ("cleaner", "describer", "paraphraser"):
        fake.behave(role, Behaviour(mode="hang"))
    fake.behave("target-model", Behaviour(chunks=20, chunk_delay_s=0.2))
    body = {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": " ".join(["whats the captial"] * 10)}]}
    with httpx.stream("POST", gateways["slow"].base_url + "/chat/completions", json=body, timeout=10) as response:
        next(response.iter_raw())
        wait_until(lambda: len([r for r in fake.requests if r.body["model"] == "paraphraser"]) == 1, timeout=3)
    # the client is gone: the stage calls are cancelled long before their 5 s timeout
    wait_until(lambda: {"cleaner", "describer", "paraphraser"} <= set(fake.cancelled), timeout=3)


def test_a_client_leaving_a_non_streaming_request_cancels_the_shadow_refinement(gateways: dict[str, GatewayProcess], fake: FakeOpenAI) -> None:
    for role in ("cleaner", "describer", "paraphraser"):
        fake.behave(role, Behaviour(mode="hang"))
    with pytest.raises(httpx.ReadTimeout):
        post(gateways["slow"], {"model": "test-model", "messages": [{"role": "user", "content": DIRTY}]}, timeout=0.8)
    wait_until(lambda: {"cleaner", "describer", "paraphraser"} <= set(fake.cancelled), timeout=3)
