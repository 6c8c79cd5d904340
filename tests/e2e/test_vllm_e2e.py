"""End to end against a real vLLM (CPU): worker launcher → vLLM with three random LoRAs → gateway.

Random weights write nonsense, so drift control must reject every rewrite and the original prompt
must reach the target; then the worker's vLLM is killed (the gateway falls back, ``/ready`` shows
the adapters down) and the launcher's supervisor brings it back.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.gateway_proc import GatewayProcess, e2e_routes
from tests.e2e.worker_proc import ROLES, WorkerProcess, pid_alive
from tests.support.fake_openai import FakeOpenAI

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]

BASE_MODEL = "mpr-tiny-llama"  # served name written by `mpr-worker make-test-model`
TYPO_PROMPT = "Waht is teh capitol of Frnace and how big is it?"  # typos: the skip gate lets it through


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.25) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def echo_target() -> Iterator[FakeOpenAI]:
    """A second, independent target LLM (answers with the prompt it got), up while the worker is down."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(vllm_worker: WorkerProcess, echo_target: FakeOpenAI,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("gateway")
    proc = GatewayProcess(e2e_routes(vllm_worker.base_url, BASE_MODEL, echo_target.base_url), workdir, _free_port())
    try:
        proc.start()
        _wait_for(lambda: _adapters_up(proc) == {r: True for r in ROLES}, 30, "the gateway to probe the adapters up")
        yield proc
    finally:
        proc.stop()


@pytest.fixture()
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", timeout=180, max_retries=0)


def _adapters_up(gateway: GatewayProcess) -> dict[str, bool]:
    _, body = gateway.ready()
    return {role: any(ep["up"] for ep in eps) for role, eps in body.get("adapters", {}).items()}


def _target_up(gateway: GatewayProcess, name: str) -> bool:
    _, body = gateway.ready()
    return any(ep["up"] for ep in body["targets"][name])


def _lora_counts(worker: WorkerProcess) -> dict[str, int]:
    return {role: worker.lora_requests(role) for role in ROLES}


def _prompt_tokens(worker: WorkerProcess, messages: list[dict[str, Any]]) -> int:
    """Tokens vLLM counts for ``messages`` under the chat template (vLLM's own /tokenize)."""
    body = {"model": BASE_MODEL, "messages": messages, "add_generation_prompt": True}
    response = httpx.post(worker.url + "/tokenize", json=body, timeout=30)
    response.raise_for_status()
    return int(response.json()["count"])


def _assert_stages_reached_vllm(worker: WorkerProcess, before: dict[str, int], base_before: int) -> None:
    def arrived() -> bool:
        now = _lora_counts(worker)
        return all(now[r] > before[r] for r in ROLES) and worker.base_requests() > base_before

    _wait_for(arrived, 10, f"vLLM's log to show all three LoRAs and the base model (before: {before})")


def _assert_rejected(header: str) -> None:
    """Every stage answered nonsense and none was applied: ``none;rejected=...`` (a stage may also fail)."""
    assert header.startswith("none;rejected="), header
    mentioned = header.replace("none;rejected=", "").replace(";failed=", ",").split(",")
    assert {"cleaner", "paraphraser"} <= set(mentioned), header
    assert set(mentioned) <= set(ROLES), header


def test_worker_lists_and_serves_every_adapter(vllm_worker: WorkerProcess) -> None:
    models = httpx.get(vllm_worker.base_url + "/models", timeout=10).json()
    listed = {m["id"]: m for m in models["data"]}
    assert {BASE_MODEL, *ROLES} <= set(listed)
    assert all(listed[r]["parent"] == BASE_MODEL for r in ROLES)
    direct = openai.OpenAI(base_url=vllm_worker.base_url, api_key="unused", timeout=120, max_retries=0)
    outputs = {}
    for role in ROLES:
        started = time.perf_counter()
        reply = direct.chat.completions.create(model=role, messages=[{"role": "user", "content": TYPO_PROMPT}],
                                               max_tokens=16, temperature=0)
        print(f"{role}: {time.perf_counter() - started:.3f}s for {reply.usage.completion_tokens} tokens")
        outputs[role] = reply.choices[0].message.content
    assert len(set(outputs.values())) == 3, f"the three LoRAs should change the output differently: {outputs}"
    print(f"vLLM ready {vllm_worker.ready_after_s:.1f}s after mpr-worker launch")


def test_non_streaming_through_gateway(vllm_worker: WorkerProcess, client: openai.OpenAI) -> None:
    before, base_before = _lora_counts(vllm_worker), vllm_worker.base_requests()
    messages = [{"role": "user", "content": TYPO_PROMPT}]
    started = time.perf_counter()
    raw = client.chat.completions.with_raw_response.create(
        model="tiny", messages=messages, max_tokens=16, temperature=0,
        extra_body={"mpr": {"return_details": True}})
    elapsed = time.perf_counter() - started
    completion = raw.parse()
    header = raw.headers["x-mpr-refinement"]
    print(f"non-streaming: {elapsed:.3f}s, x-mpr-refinement={header}, x-mpr-refine-ms={raw.headers.get('x-mpr-refine-ms')}")

    _assert_rejected(header)
    float(raw.headers["x-mpr-refine-ms"])
    details = raw.http_response.json()["mpr"]
    assert details["original"] == TYPO_PROMPT
    assert details["refined"] == TYPO_PROMPT, "drift control must keep the original prompt"
    assert not details.get("description"), "the random describer's gibberish must not be added"
    assert set(details["stages"]) == set(ROLES)
    assert not any(stage.get("accepted") for stage in details["stages"].values()), details["stages"]

    _assert_stages_reached_vllm(vllm_worker, before, base_before)
    # the target saw exactly the original conversation: same token count as vLLM's own tokenization
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == _prompt_tokens(vllm_worker, messages)
    assert completion.model == BASE_MODEL
    assert completion.choices[0].message.content, "the target's answer must come back"


def test_streaming_through_gateway(vllm_worker: WorkerProcess, client: openai.OpenAI) -> None:
    before, base_before = _lora_counts(vllm_worker), vllm_worker.base_requests()
    messages = [{"role": "user", "content": TYPO_PROMPT}]
    started = time.perf_counter()
    with client.chat.completions.with_streaming_response.create(
            model="tiny", messages=messages, max_tokens=16, temperature=0, stream=True,
            stream_options={"include_usage": True}) as response:
        header = response.headers["x-mpr-refinement"]
        chunks = list(response.parse())
    elapsed = time.perf_counter() - started
    print(f"streaming: {elapsed:.3f}s, {len(chunks)} chunks, x-mpr-refinement={header}")

    _assert_rejected(header)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text, "the target's streamed answer must come back"
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens == 16
    assert usage[0].prompt_tokens == _prompt_tokens(vllm_worker, messages)
    _assert_stages_reached_vllm(vllm_worker, before, base_before)


def test_worker_crash_fallback_and_recovery(vllm_worker: WorkerProcess, gateway: GatewayProcess,
                                            client: openai.OpenAI, echo_target: FakeOpenAI) -> None:
    old_pid = vllm_worker.server_pid()
    os.kill(old_pid, signal.SIGKILL)  # the vLLM server dies; the launcher must notice and restart it
    _wait_for(lambda: not vllm_worker.healthy(), 30, "vLLM to go down")

    # the adapters are down but another target still answers: refinement falls back to the original
    raw = client.chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "user", "content": TYPO_PROMPT}])
    header = raw.headers["x-mpr-refinement"]
    assert header.startswith("fallback"), header
    assert TYPO_PROMPT in (raw.parse().choices[0].message.content or "")
    assert echo_target.requests_for("target-model")[-1].body["messages"][-1]["content"] == TYPO_PROMPT

    _wait_for(lambda: _adapters_up(gateway) == {r: False for r in ROLES}, 30, "/ready to report the adapters down")
    status, body = gateway.ready()
    assert status == 200 and body["status"] == "ready", body  # the echo target is still up
    _wait_for(lambda: not _target_up(gateway, "tiny"), 30, "/ready to report the tiny target down")
    _wait_for(lambda: not pid_alive(old_pid), 30, "the killed vLLM process to be reaped")

    # the supervisor restarts vLLM with backoff; the gateway sees it come back
    vllm_worker.wait_ready(ready_events=2, timeout_s=420)
    assert "event=crashed" in vllm_worker.logs()
    assert vllm_worker.server_pid() != old_pid
    _wait_for(lambda: _adapters_up(gateway) == {r: True for r in ROLES}, 60, "/ready to report the adapters up")
    _wait_for(lambda: _target_up(gateway, "tiny"), 60, "/ready to report the tiny target up")
    raw = client.chat.completions.with_raw_response.create(
        model="tiny", messages=[{"role": "user", "content": TYPO_PROMPT}], max_tokens=8)
    _assert_rejected(raw.headers["x-mpr-refinement"])
    assert raw.parse().choices[0].message.content
