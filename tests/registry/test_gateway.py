"""Registration against real gateway processes on loopback, fake workers as peers: a registered
worker joins the adapter pool and serves the stage under its own LoRA name; it leaves on a
deregistration or after three missed heartbeats; keys; a restarted gateway is whole again within
one heartbeat; a reload keeps it; two gateways on one real Redis and ``serve --workers 2`` without
Redis both see every worker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.registry.models import MISSED_HEARTBEATS
from tests.registry.helpers import (
    ADMIN_KEY,
    CLEANED,
    REGISTER_KEY,
    announcement,
    chat,
    deregister,
    listed,
    pooled,
    register,
    routes_with_registration,
    status_endpoints,
    until,
)
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess
from tests.support.redis_server import RedisServer
from worker_launch.register import Announcer, Registration


@pytest.fixture
def target() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def worker() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        fake.behave("lora-w1", Behaviour(reply=lambda _m, _b: CLEANED))
        yield fake


@pytest.mark.timeout(60)
def test_a_registered_worker_serves_its_stage_under_its_own_lora_name_until_deregistered(
    tmp_path: Path, target: FakeOpenAI, worker: FakeOpenAI
) -> None:
    with GatewayProcess(routes_with_registration(target.base_url), tmp_path) as gw:
        r = chat(gw)
        assert r.status_code == 200 and r.headers["x-mpr-refinement"] != "cleaner"  # no endpoint yet
        r = register(gw, announcement("w1", worker.base_url) | {"adapters": {"cleaner": "lora-w1", "future-role": "x"}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["pooled_roles"] == ["cleaner"] and body["ignored_roles"] == ["future-role"] and body["ttl_s"] == 15
        assert pooled(gw) == [worker.base_url]
        assert status_endpoints(gw) == [(worker.base_url, "registered", "gpu")]
        r = chat(gw)
        assert r.status_code == 200 and r.headers["x-mpr-refinement"] == "cleaner"
        assert len(worker.requests_for("lora-w1")) == 1 and not worker.requests_for("configured-cleaner")
        assert "capital of france" in target.requests_for("target-model")[-1].body["messages"][-1]["content"]
        [entry] = listed(gw)
        assert entry["node"] == "w1" and entry["tier"] == "gpu" and entry["pooled_roles"] == ["cleaner"]
        assert [w["node"] for w in listed(gw, REGISTER_KEY)] == ["w1"]
        assert register(gw, announcement("w1", worker.base_url, cleaner="lora-w1")).status_code == 200
        assert pooled(gw) == [worker.base_url]  # a heartbeat is idempotent
        r = deregister(gw, "w1")
        assert r.status_code == 200 and r.json() == {"node": "w1", "deregistered": True}
        assert pooled(gw) == [] and listed(gw) == [] and status_endpoints(gw) == []
        assert deregister(gw, "w1").json()["deregistered"] is False
        assert "worker w1 registered" in gw.logs() and "worker.deregistered: w1" in gw.logs()


@pytest.mark.timeout(60)
def test_registration_keys_403_without_one_401_when_wrong_and_400_for_a_bad_announcement(tmp_path: Path, target: FakeOpenAI) -> None:
    tree = routes_with_registration(target.base_url)
    tree["server"] = {**tree["server"], "register_keys": []}
    with GatewayProcess(tree, tmp_path) as gw:
        r = register(gw, announcement("w1", "http://127.0.0.1:9/v1"), key="anything")
        assert r.status_code == 403 and r.json()["error"]["code"] == "registration_disabled"
        assert httpx.delete(gw.url + "/admin/workers/w1", timeout=5).status_code == 403
        assert httpx.get(gw.url + "/admin/workers", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=5).status_code == 200
    with GatewayProcess(routes_with_registration(target.base_url), tmp_path) as gw:
        for key in (None, ADMIN_KEY, "wrong"):
            r = register(gw, announcement("w1", "http://127.0.0.1:9/v1"), key=key)
            assert r.status_code == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}
        r = register(gw, announcement("bad node", "http://127.0.0.1:9/v1"))
        assert r.status_code == 400 and r.json()["error"]["param"] == "node"
        assert httpx.get(gw.url + "/admin/workers", timeout=5).status_code == 401
        assert pooled(gw) == []


@pytest.mark.timeout(60)
def test_missed_heartbeats_drop_the_worker(tmp_path: Path, target: FakeOpenAI, worker: FakeOpenAI) -> None:
    heartbeat = 0.4
    with GatewayProcess(routes_with_registration(target.base_url), tmp_path) as gw:
        assert register(gw, announcement("w1", worker.base_url, heartbeat_s=heartbeat)).status_code == 200
        registered = time.monotonic()
        for _ in range(4):  # heartbeats keep it
            time.sleep(heartbeat)
            assert register(gw, announcement("w1", worker.base_url, heartbeat_s=heartbeat)).status_code == 200
            assert pooled(gw) == [worker.base_url]
        registered = time.monotonic()
        until(lambda: pooled(gw) == [], 5, "dropped after missed heartbeats")
        gone_after = time.monotonic() - registered
        assert heartbeat * MISSED_HEARTBEATS - 0.1 <= gone_after <= heartbeat * MISSED_HEARTBEATS + 1.5
        assert listed(gw) == []
        assert "worker.expired: w1" in gw.logs()


@pytest.mark.timeout(90)
def test_a_restarted_gateway_is_whole_again_within_one_heartbeat_and_a_reload_keeps_the_worker(
    tmp_path: Path, target: FakeOpenAI, worker: FakeOpenAI
) -> None:
    heartbeat = 1.0
    tree = routes_with_registration(target.base_url)
    gw = GatewayProcess(tree, tmp_path).start()
    announcer = Announcer(Registration(gateway=gw.url, node="w1", url=worker.base_url, tier="cpu", adapters={"cleaner": "lora-w1"},
                                       base_model="tiny", heartbeat_s=heartbeat, key=REGISTER_KEY))
    try:
        announcer.up()
        until(lambda: pooled(gw) == [worker.base_url], 5, "registered")
        reloaded = httpx.post(gw.url + "/admin/reload", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
        assert reloaded.status_code == 200 and reloaded.json()["status"] == "reloaded"
        assert pooled(gw) == [worker.base_url]  # the new runtime's pool got it when it started
        gw.stop()
        again = GatewayProcess(tree, tmp_path)
        again.port = gw.port
        gw = again.start()
        back = until(lambda: pooled(gw) == [worker.base_url], heartbeat + 1.0, "whole again after a restart")
        assert back <= heartbeat + 0.5
        assert chat(gw).headers["x-mpr-refinement"] == "cleaner"
    finally:
        announcer.close()  # deregisters
        until(lambda: pooled(gw) == [], 5, "deregistered on close")
        gw.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.mark.timeout(90)
def test_two_gateways_on_one_redis_both_see_every_worker(
    tmp_path: Path, target: FakeOpenAI, worker: FakeOpenAI, redis_server: RedisServer
) -> None:
    tree = routes_with_registration(target.base_url, state={"redis_url": redis_server.url, "key_prefix": "gw:"})
    a, b = GatewayProcess(tree, tmp_path).launch(), GatewayProcess(tree, tmp_path).launch()
    try:
        a.wait_ready(), b.wait_ready()
        assert register(a, announcement("w1", worker.base_url)).status_code == 200
        assert pooled(a) == [worker.base_url]
        seen = until(lambda: pooled(b) == [worker.base_url], 3, "the other gateway sees the worker")
        assert seen < 2.0
        assert [w["node"] for w in listed(b)] == ["w1"]
        assert chat(b).headers["x-mpr-refinement"] == "cleaner"
        assert deregister(b, "w1").json()["deregistered"] is True
        until(lambda: pooled(a) == [], 3, "the deregistration reaches the other gateway")
        assert "worker.deregistered: w1" in a.logs()
    finally:
        a.stop(), b.stop()


@pytest.mark.timeout(90)
def test_serve_with_two_workers_and_no_redis_every_process_sees_the_worker(tmp_path: Path, target: FakeOpenAI, worker: FakeOpenAI) -> None:
    with GatewayProcess(routes_with_registration(target.base_url), tmp_path, workers=2) as gw:
        assert register(gw, announcement("w1", worker.base_url)).status_code == 200
        time.sleep(1.5)  # one sync round of every process
        views = [pooled(gw) for _ in range(20)]  # a new connection each: both processes answer some
        assert all(view == [worker.base_url] for view in views), views
        refinements = [chat(gw).headers["x-mpr-refinement"] for _ in range(10)]
        assert refinements == ["cleaner"] * 10
        assert deregister(gw, "w1").status_code == 200
        time.sleep(1.5)
        assert all(pooled(gw) == [] for _ in range(10))


@pytest.mark.timeout(60)
def test_prefer_gpu_sends_stages_to_the_gpu_worker_and_spills_to_the_cpu_one_when_it_is_gone(
    tmp_path: Path, target: FakeOpenAI, worker: FakeOpenAI
) -> None:
    with FakeOpenAI() as cpu:
        cpu.behave("lora-cpu", Behaviour(reply=lambda _m, _b: CLEANED))
        tree = routes_with_registration(target.base_url, adapter={"prefer": "gpu", "max_inflight": 2})
        with GatewayProcess(tree, tmp_path) as gw:
            assert register(gw, announcement("cpu", cpu.base_url, tier="cpu", cleaner="lora-cpu")).status_code == 200
            assert register(gw, announcement("gpu", worker.base_url, tier="gpu", cleaner="lora-w1")).status_code == 200
            assert sorted(status_endpoints(gw)) == sorted([(cpu.base_url, "registered", "cpu"), (worker.base_url, "registered", "gpu")])
            for _ in range(4):
                assert chat(gw).headers["x-mpr-refinement"] == "cleaner"
            assert len(worker.requests_for("lora-w1")) == 4 and not cpu.requests_for("lora-cpu")
            worker.down = True  # the GPU worker fails: it cools down, the CPU one takes over
            until(lambda: chat(gw).headers["x-mpr-refinement"] == "cleaner" and len(cpu.requests_for("lora-cpu")) >= 2, 10,
                  "the CPU worker to take the stage")
