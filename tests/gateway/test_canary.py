"""A canary for the cleaner stage, through a gateway process: a fake vLLM peer serves the stable
LoRA (``cleaner``) and a candidate (``cleaner@2``). The candidate gets its configured share of the
calls (sticky per prompt); a deliberately broken candidate is rolled back by the statistical test,
with the event on ``/admin/events``, and gets no call after it; an operator promotes or rolls back
with ``mpr-gateway canary``; the metrics, ``/admin/status`` and ``/admin/canary`` say where things
stand."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.admin.conftest import EventReader
from tests.gateway.conftest import start_gateway, wait_until
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import REPO, GatewayProcess, routes

ADMIN = "adm-canary-0123456789abcdef"
AUTH = {"authorization": f"Bearer {ADMIN}"}
SHARE = 0.3
PROMPTS = 300
_NUMBER = re.compile(r"country (\d+)")


def prompt(n: int) -> str:
    return f"what is teh capital of country {n}"


def corrected(_model: str, body: dict[str, Any]) -> str:
    """A good cleaner: the typo fixed (drift control accepts it)."""
    return f"what is the capital of country {_NUMBER.search(json.dumps(body)).group(1)}"  # type: ignore[union-attr]


def unrelated(_model: str, _body: dict[str, Any]) -> str:
    """A broken candidate: text that has nothing to do with the prompt (drift control rejects it)."""
    return "Bananas are long yellow fruit that grow in hanging bunches."


@pytest.fixture
def peer() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        fake.behave("cleaner", Behaviour(reply=corrected))
        yield fake


def canary_gateway(tmp_path_factory: pytest.TempPathFactory, peer: FakeOpenAI, **canary: Any) -> GatewayProcess:
    config = routes(peer.base_url, peer.base_url, server={"admin_keys": [ADMIN], "probe_interval_s": 0.5})
    config["adapters"] = {"cleaner": {**config["adapters"]["cleaner"], "canary": {"model": "cleaner@2", **canary}}}
    config["refinement"] = {**config["refinement"], "stages": ["cleaner"]}
    return start_gateway(tmp_path_factory, config)


def chat(gw: GatewayProcess, text: str) -> httpx.Response:
    response = httpx.post(gw.base_url + "/chat/completions", json={"model": "test-model", "messages": [{"role": "user", "content": text}]}, timeout=10)
    assert response.status_code == 200, response.text
    return response


def calls(peer: FakeOpenAI, model: str) -> int:
    return len(peer.requests_for(model))


def served_by(peer: FakeOpenAI) -> dict[int, str]:
    """Prompt number → the LoRA model that cleaned it."""
    found = {}
    for request in peer.requests:
        if request.body.get("model") in ("cleaner", "cleaner@2"):
            found[int(_NUMBER.findall(json.dumps(request.body))[-1])] = request.body["model"]
    return found


def canary_cli(gw: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "canary", *args, "--url", gw.url, "--key", ADMIN],
                          capture_output=True, text=True, cwd=REPO, timeout=30)


def test_the_candidate_gets_its_share_sticky_per_prompt_and_can_be_promoted(
    peer: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> None:
    peer.behave("cleaner@2", Behaviour(reply=corrected))  # as good as the stable one: never rolled back
    gw = canary_gateway(tmp_path_factory, peer, share=SHARE, min_requests=50)
    try:
        for n in range(PROMPTS):
            assert chat(gw, prompt(n)).headers["x-mpr-refinement"] == "cleaner"
        candidate, stable = calls(peer, "cleaner@2"), calls(peer, "cleaner")
        assert candidate + stable == PROMPTS
        assert abs(candidate / PROMPTS - SHARE) <= 0.06, (candidate, stable)  # 300 prompts: ±0.06 is 2.3 standard deviations
        first = served_by(peer)
        peer.requests.clear()
        for n in range(20):  # the same prompts again: each meets the same version (the refinement cache is off here)
            chat(gw, prompt(n))
        assert served_by(peer) == {n: first[n] for n in range(20)}
        status = canary_cli(gw, "status")
        assert status.returncode == 0 and "cleaner@2 on 30.0% of the calls" in status.stdout and "active" in status.stdout
        assert re.search(r"candidate\s+\d+\s+100\.0%", status.stdout), status.stdout
        promoted = canary_cli(gw, "promote", "cleaner")
        assert promoted.returncode == 0 and "promoted" in promoted.stdout
        before = calls(peer, "cleaner")
        for n in range(PROMPTS, PROMPTS + 20):
            chat(gw, prompt(n))
        assert calls(peer, "cleaner") == before  # promoted: every call to the candidate
        metrics = httpx.get(gw.url + "/metrics", timeout=5).text
        assert re.search(r'mpr_canary_verdicts_total\{arm="candidate",outcome="accepted",stage="cleaner"\} [1-9]', metrics)
        assert re.search(r'mpr_canary_stage_duration_seconds_count\{arm="stable",stage="cleaner"\} [1-9]', metrics)
        assert re.search(r'mpr_canary_drift_count\{arm="candidate",stage="cleaner"\} [1-9]', metrics)
    finally:
        gw.stop()


def test_a_broken_candidate_is_rolled_back_with_an_event(peer: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> None:
    peer.behave("cleaner@2", Behaviour(reply=unrelated))
    gw = canary_gateway(tmp_path_factory, peer, share=0.5, min_requests=30, alpha=0.001)
    try:
        with EventReader(gw.url, headers=AUTH) as events:
            n = 0
            while n < 400 and httpx.get(gw.url + "/admin/canary", headers=AUTH, timeout=5).json()["data"][0]["state"] == "active":
                chat(gw, prompt(n))
                n += 1
            wait_until(lambda: events.of("canary.rolled_back"), timeout=5)
        (event,) = events.of("canary.rolled_back")
        assert event["data"]["role"] == "cleaner" and event["data"]["candidate"] == "cleaner@2"
        arms = event["data"]["arms"]
        assert arms["candidate"]["verdicts"] >= 30 and arms["candidate"]["acceptance_rate"] == 0.0
        assert arms["stable"]["acceptance_rate"] == 1.0 and event["data"]["test"]["p_value"] < 0.001
        assert n < 120  # judged soon after both arms reached the minimum
        before = calls(peer, "cleaner@2")
        for m in range(n, n + 30):  # rolled back: the stable model answers every prompt, the candidate's too
            assert chat(gw, prompt(m)).headers["x-mpr-refinement"] == "cleaner"
        assert calls(peer, "cleaner@2") == before
        (stage,) = [s for s in httpx.get(gw.url + "/admin/status", headers=AUTH, timeout=5).json()["stages"] if s["role"] == "cleaner"]
        assert stage["canary"]["state"] == "rolled_back" and "candidate worse" in stage["canary"]["reason"]
        assert "rolled back" in canary_cli(gw, "status", "cleaner").stdout
    finally:
        gw.stop()


def test_a_verdict_reaches_every_worker_and_survives_a_reload(peer: FakeOpenAI, tmp_path: Any) -> None:
    """``serve --workers 2`` without Redis: an operator's rollback, answered by one worker, is
    adopted by the other within a second (the server's shared directory), and a reload keeps it."""
    peer.behave("cleaner@2", Behaviour(reply=corrected))
    config = routes(peer.base_url, peer.base_url, server={"admin_keys": [ADMIN], "probe_interval_s": 0.5})
    config["adapters"] = {"cleaner": {**config["adapters"]["cleaner"], "canary": {"model": "cleaner@2", "share": 0.5}}}
    config["refinement"] = {**config["refinement"], "stages": ["cleaner"]}
    with GatewayProcess(config, tmp_path, workers=2) as gw:
        wait_until(lambda: 'mpr_server_workers{state="live"} 2.0' in httpx.get(gw.url + "/metrics", timeout=5).text, timeout=30)
        assert canary_cli(gw, "rollback", "cleaner").returncode == 0

        def states() -> set[str]:  # new connections land on either worker
            return {httpx.get(gw.url + "/admin/canary", headers=AUTH, timeout=5).json()["data"][0]["state"] for _ in range(16)}

        wait_until(lambda: states() == {"rolled_back"}, timeout=5)
        before = calls(peer, "cleaner@2")
        for n in range(40):
            chat(gw, prompt(n))
        assert calls(peer, "cleaner@2") == before  # no worker sends the candidate anything
        assert httpx.post(gw.url + "/admin/reload", headers=AUTH, timeout=10).status_code == 200
        wait_until(lambda: states() == {"rolled_back"}, timeout=5)
