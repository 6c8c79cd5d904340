"""Cache-aware routing through a gateway process: one target with two replicas (fake peers),
``balance: affinity`` (the default). A conversation stays on one replica for every turn; the
conversations spread over both; a replica that goes down hands its conversations to the other and
gets them back when it returns; a killed replica loses no request; a stored response is reached —
by id and as ``previous_response_id`` — on the replica that created it, and a clear 502 answers
when that replica is gone, never the other replica."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import start_gateway, wait_until
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import REPO, GatewayProcess, routes


ADMIN = "adm-affinity-0123456789abcdef"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def replicas() -> tuple[FakeOpenAI, FakeOpenAI]:
    return FakeOpenAI().start(), FakeOpenAI().start()


@pytest.fixture
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, FakeOpenAI, FakeOpenAI]]:
    one, two = replicas()
    config = routes(one.base_url, server={"probe_interval_s": 1.0, "admin_keys": [ADMIN]})
    config["targets"] = [
        {"name": "conv", "endpoints": [one.base_url, two.base_url], "upstream_model": "target-model", "cooldown_s": 1, "timeout_s": 10}
    ]
    gw = start_gateway(tmp_path_factory, config)
    try:
        yield gw, one, two
    finally:
        gw.stop()
        one.stop()
        two.stop()


def turn(gw: GatewayProcess, conversation: int, turns: int) -> httpx.Response:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You answer briefly."}]
    for t in range(turns):
        messages.append({"role": "user", "content": f"conversation {conversation} question {t}"})
        if t < turns - 1:
            messages.append({"role": "assistant", "content": f"answer {t}"})
    return httpx.post(gw.base_url + "/chat/completions", json={"model": "conv", "messages": messages}, timeout=10)


def holder(one: FakeOpenAI, two: FakeOpenAI, conversation: int) -> set[str]:
    """Which replicas got a request of ``conversation``."""
    needle = f"conversation {conversation} question"
    return {name for name, fake in (("one", one), ("two", two))
            if any(needle in str(r.body.get("messages")) for r in fake.requests if r.path == "/v1/chat/completions")}


def affinity_counts(gw: GatewayProcess) -> dict[str, float]:
    counts: dict[str, float] = {}
    for line in httpx.get(gw.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith('mpr_target_affinity_total{') and 'target="conv"' in line:
            result = line.split('result="', 1)[1].split('"', 1)[0]
            counts[result] = float(line.rsplit(" ", 1)[1])
    return counts


def test_each_conversation_stays_on_one_replica_and_they_spread(pair: tuple[GatewayProcess, FakeOpenAI, FakeOpenAI]) -> None:
    gw, one, two = pair
    for t in range(1, 5):
        for c in range(12):
            assert turn(gw, c, t).status_code == 200
    homes = [holder(one, two, c) for c in range(12)]
    assert all(len(h) == 1 for h in homes), homes  # every turn of a conversation on one replica
    assert {"one"} in homes and {"two"} in homes  # and the conversations spread over both
    assert affinity_counts(gw)["hit"] == 48


def test_a_replica_down_hands_its_conversations_over_and_gets_them_back(pair: tuple[GatewayProcess, FakeOpenAI, FakeOpenAI]) -> None:
    gw, one, two = pair
    convs = range(8)
    for c in convs:
        turn(gw, c, 1)
    on_one = [c for c in convs if holder(one, two, c) == {"one"}]
    assert on_one
    one.down = True  # its health probes fail: out of rotation
    wait_until(lambda: not httpx.get(gw.url + "/ready", timeout=5).json()["targets"]["conv"][0]["up"], timeout=5)
    one.requests.clear()
    for c in on_one:
        assert turn(gw, c, 2).status_code == 200
    assert all(holder(one, two, c) == {"two"} or holder(one, two, c) == set() for c in on_one)
    assert not any(holder(one, two, c) & {"one"} for c in on_one)
    one.down = False
    wait_until(lambda: httpx.get(gw.url + "/ready", timeout=5).json()["targets"]["conv"][0]["up"], timeout=5)
    two.requests.clear()
    for c in on_one:
        assert turn(gw, c, 3).status_code == 200
    assert all(holder(one, two, c) == {"one"} for c in on_one)  # back home
    assert affinity_counts(gw)["moved"] >= len(on_one)


def test_a_killed_replica_loses_no_request_and_a_response_stays_on_its_replica(
    pair: tuple[GatewayProcess, FakeOpenAI, FakeOpenAI]
) -> None:
    gw, one, two = pair
    created = httpx.post(gw.base_url + "/responses", json={"model": "conv", "input": "remember the number 7"}, timeout=10)
    assert created.status_code == 200
    rid = created.json()["id"]
    stored_on, other = (one, two) if rid in one.responses else (two, one)
    for fake in (one, two):
        fake.requests.clear()
    again = httpx.get(f"{gw.base_url}/responses/{rid}", timeout=10)
    follow = httpx.post(gw.base_url + "/responses", json={"model": "conv", "input": "which number?", "previous_response_id": rid}, timeout=10)
    assert again.status_code == 200 and follow.status_code == 200
    assert other.requests == [] and len(stored_on.requests) == 2  # both on the replica that stored it
    port = stored_on.port
    stored_on.stop()  # killed
    for c in range(6):  # every conversation still answered: the pool retries on the other replica
        assert turn(gw, c, 1).status_code == 200
    other.requests.clear()
    gone = httpx.get(f"{gw.base_url}/responses/{rid}", timeout=10)
    assert gone.status_code == 502 and "replica" in gone.json()["error"]["message"]
    cont = httpx.post(gw.base_url + "/responses", json={"model": "conv", "input": "and now?", "previous_response_id": rid}, timeout=10)
    assert cont.status_code == 502 and "stored this response" in cont.json()["error"]["message"]
    assert other.requests == []  # never a replica that never saw the response
    stored_on.start(port)  # back on the same address (the fake keeps its store, as a persistent one would)
    wait_until(lambda: all(e["up"] for e in httpx.get(gw.url + "/ready", timeout=5).json()["targets"]["conv"]), timeout=5)
    stored_on.requests.clear()
    assert httpx.get(f"{gw.base_url}/responses/{rid}", timeout=10).status_code == 200
    assert len(stored_on.requests) == 1 and other.requests == []


def test_the_operator_sees_the_placements_in_status_and_on_the_dashboard(pair: tuple[GatewayProcess, FakeOpenAI, FakeOpenAI]) -> None:
    gw, one, two = pair
    for c in range(6):
        turn(gw, c, 1)
        turn(gw, c, 2)
    status = httpx.get(gw.url + "/admin/status", headers={"authorization": f"Bearer {ADMIN}"}, timeout=5).json()
    (target,) = status["targets"]
    assert target["routing"] == {"balance": "affinity", "epsilon": 0.25, "placed": {"hit": 12, "spill": 0, "moved": 0, "none": 0}}
    if CHROMIUM is None:
        pytest.fail("no chromium on PATH: scripts/install-chromium.sh installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test dependency (scripts/bootstrap.sh)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.goto(gw.url + "/admin/")
            page.fill("#admin-key", ADMIN)
            page.click("#key-form button")
            card = page.locator('[data-routing="conv"]')
            card.wait_for(timeout=5000)
            assert "home replica 100% of 12" in card.text_content()
            (REPO / "test-artifacts").mkdir(exist_ok=True)
            page.screenshot(path=str(REPO / "test-artifacts" / "routing.png"), full_page=True)
        finally:
            browser.close()
