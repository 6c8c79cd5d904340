"""``GET /admin/status``, ``GET /admin/events`` and the dashboard's files, against a real gateway
process on loopback with a fake target and a fake adapter worker as peers."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.admin.conftest import (
    ADMIN_KEY,
    AUTH,
    CLEANED,
    DESCRIBED,
    DIRTY,
    PARAPHRASED,
    EventReader,
    admin_config,
    refining,
    restart,
    status,
    wait_until,
)
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import REPO, GatewayProcess, clean_env, free_port


def _error(response: httpx.Response, status_code: int) -> dict:
    assert response.status_code == status_code, response.text
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_the_admin_routes_need_the_admin_key(gateway: GatewayProcess) -> None:
    for path in ("/admin/status", "/admin/events"):
        _error(httpx.get(gateway.url + path, timeout=5), 401)
        _error(httpx.get(gateway.url + path, headers={"authorization": "Bearer wrong"}, timeout=5), 401)
    assert httpx.get(gateway.url + "/admin/status", headers=AUTH, timeout=5).status_code == 200


def test_without_an_admin_key_configured_the_routes_answer_403(target: FakeOpenAI, worker: FakeOpenAI, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with GatewayProcess(admin_config(target.base_url, worker.base_url), tmp_path) as gw:
        assert _error(httpx.get(gw.url + "/admin/status", headers=AUTH, timeout=5), 403)["code"] == "admin_disabled"
        page = httpx.get(gw.url + "/admin/", timeout=5)  # the page holds no data: served anyway
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def test_status_shows_the_fleet_latencies_and_refinement_verdicts_never_prompt_text(
    gateway: GatewayProcess, target: FakeOpenAI, worker: FakeOpenAI
) -> None:
    refining(worker)
    for _ in range(3):
        reply = httpx.post(
            gateway.base_url + "/chat/completions",
            json={"model": "test-model", "messages": [{"role": "user", "content": DIRTY}]},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-mpr-refinement"] not in ("off", "")
    header = reply.headers["x-mpr-refinement"]
    response = httpx.get(gateway.url + "/admin/status", headers=AUTH, timeout=5)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    for text in (DIRTY, CLEANED, PARAPHRASED, DESCRIBED, "captial"):
        assert text not in response.text  # counts and verdicts only
    body = response.json()
    assert body["object"] == "mpr.status" and body["pid"] == gateway.proc.pid and body["workers"] == 1
    assert body["version"] and body["uptime_s"] > 0 and len(body["config"]["hash"]) >= 8
    assert body["draining"] is False

    (tgt,) = body["targets"]
    assert tgt["name"] == "test-model" and tgt["pool"] == "target:test-model"
    (endpoint,) = tgt["endpoints"]
    assert endpoint["url"] == target.base_url and endpoint["node"] == "127.0.0.1"
    assert endpoint["tier"] is None and endpoint["source"] == "config"
    assert endpoint["up"] is True and endpoint["in_flight"] == 0 and endpoint["last_error"] is None
    assert endpoint["latency_ms"]["samples"] >= 3
    assert 0 < endpoint["latency_ms"]["p50"] <= endpoint["latency_ms"]["p99"]

    stages = {s["role"]: s for s in body["stages"]}
    assert set(stages) == {"cleaner", "describer", "paraphraser"}
    for stage in stages.values():
        assert stage["kind"] == "vllm" and [e["url"] for e in stage["endpoints"]] == [worker.base_url]
        assert stage["endpoints"][0]["latency_ms"]["samples"] >= 3
    cleaner = stages["cleaner"]["acceptance"]
    assert cleaner["since_start"]["accepted"] >= 3 and cleaner["since_start"]["acceptance_rate"] > 0
    assert cleaner["window"]["accepted"] >= 3

    refinement = body["refinement"]
    assert refinement["since_start"]["results"]["applied"] >= 3
    assert refinement["window"]["total"] >= 3 and set(refinement["window"]["results"]) == {"applied", "rejected", "skipped", "fallback", "failed"}
    latest = refinement["recent"][0]
    assert latest["model"] == "test-model" and latest["refinement"] == header and latest["result"] == "applied" and latest["status"] == 200
    assert latest["elapsed_ms"] > 0 and latest["stages"]["cleaner"] == "accepted" and latest["mode"] == "apply"
    assert body["cache"] == {"enabled": False, "hits": 0, "misses": 0, "bypass": 0, "errors": 0, "hit_rate": None}
    assert body["rate_limit"]["enabled"] is False
    assert body["state"]["kind"] == "local"


def test_a_stopped_worker_is_announced_down_then_up_again(gateway: GatewayProcess, worker: FakeOpenAI) -> None:
    with EventReader(gateway.url) as reader:
        assert reader.status == 200 and reader.content_type.startswith("text/event-stream")
        worker.stop()
        try:
            wait_until(lambda: len(reader.of("endpoint.down", url=worker.base_url)) == 3, timeout=5)  # its three stages
            down = reader.of("endpoint.down", url=worker.base_url)
            assert {e["data"]["pool"] for e in down} == {"adapter:cleaner", "adapter:describer", "adapter:paraphraser"}
            assert all(e["data"]["node"] == "127.0.0.1" and e["data"]["error"] for e in down)
            stages = status(gateway)["stages"]
            assert all(not s["endpoints"][0]["up"] and s["endpoints"][0]["consecutive_failures"] >= 1 for s in stages)
        finally:
            restart(worker)
        wait_until(lambda: len(reader.of("endpoint.up", url=worker.base_url)) == 3, timeout=5)
        assert all(s["endpoints"][0]["up"] for s in status(gateway)["stages"])
        assert reader.retry is not None and reader.retry > 0
        seqs = [e["seq"] for e in reader.events]
        assert seqs == sorted(seqs)


def test_a_reload_is_announced_and_replayed(gateway: GatewayProcess) -> None:
    before = status(gateway)["config"]["hash"]
    with EventReader(gateway.url) as reader:
        config = {**gateway.config, "refinement": {**gateway.config["refinement"], "deadline_s": 2.5}}
        gateway.rewrite(config)
        reloaded = httpx.post(gateway.url + "/admin/reload", headers=AUTH, timeout=10)
        assert reloaded.status_code == 200, reloaded.text
        after = reloaded.json()["config"]["hash"]
        (event,) = wait_until(lambda: reader.of("config.reloaded"), timeout=5)
        assert event["data"]["hash"] == after and event["data"]["previous"] == before
        assert event["data"]["trigger"] == "POST /admin/reload"
    assert status(gateway)["config"]["hash"] == after
    with EventReader(gateway.url, replay=50) as replayed:  # a new subscriber catches up on recent events
        wait_until(lambda: replayed.of("config.reloaded", hash=after), timeout=5)


def test_a_client_that_hangs_up_is_unsubscribed(gateway: GatewayProcess) -> None:
    readers = [EventReader(gateway.url).__enter__() for _ in range(2)]
    wait_until(lambda: status(gateway)["events"]["subscribers"] == 2, timeout=5)
    for reader in readers:
        reader.close()
    wait_until(lambda: status(gateway)["events"]["subscribers"] == 0, timeout=5)


@pytest.mark.parametrize("drain_s", [0.0, 1.0])
def test_shutdown_with_an_open_event_stream_exits_at_once(target: FakeOpenAI, worker: FakeOpenAI, tmp_path, drain_s: float) -> None:  # type: ignore[no-untyped-def]
    config = admin_config(target.base_url, worker.base_url, shutdown_grace_s=20, drain_delay_s=drain_s)
    gw = GatewayProcess(config, tmp_path, env={"MPR_ADMIN_KEY": ADMIN_KEY}).start()
    try:
        with EventReader(gw.url) as reader:
            wait_until(lambda: reader.comments, timeout=5)  # the stream is open
            started = time.monotonic()
            assert gw.proc is not None
            gw.proc.send_signal(signal.SIGTERM)
            assert reader.ended.wait(drain_s + 5), "the event stream stayed open while the gateway shut down"
            gw.proc.wait(drain_s + 5)  # far below the 20 s grace period
            elapsed = time.monotonic() - started
        assert gw.proc.returncode == 0, gw.logs()[-2000:]
        assert elapsed < drain_s + 5
    finally:
        gw.stop()


def test_the_dashboard_is_one_page_with_its_own_script_and_style(gateway: GatewayProcess) -> None:
    for path in ("/admin", "/admin/"):
        page = httpx.get(gateway.url + path, timeout=5)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert 'src="/admin/assets/dashboard.js"' in page.text and 'href="/admin/assets/dashboard.css"' in page.text
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        asset = httpx.get(f"{gateway.url}/admin/assets/{name}", timeout=5)
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert "http://" not in asset.text and "https://" not in asset.text  # no CDN, no external font
    _error(httpx.get(gateway.url + "/admin/assets/routes.yaml", timeout=5), 404)


def test_the_demo_honours_MPR_ADMIN_KEY() -> None:
    port = free_port()
    command = [sys.executable, "-m", "gateway", "demo", "--port", str(port)]
    env = {**clean_env(), "MPR_ADMIN_KEY": ADMIN_KEY}
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            assert proc.poll() is None, "the demo exited"
            try:
                return httpx.get(url + "/health", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, timeout=60, interval=0.2)
        _error(httpx.get(url + "/admin/status", timeout=5), 401)
        body = httpx.get(url + "/admin/status", headers=AUTH, timeout=5).json()
        assert body["config"]["source"] == "<in-process>"
        assert [(s["role"], s["kind"]) for s in body["stages"]] == [("cleaner", "builtin")]
        assert body["targets"][0]["name"] == "demo-echo"
    finally:
        proc.terminate()
        proc.wait(15)


def test_with_several_workers_each_process_answers_for_itself(target: FakeOpenAI, worker: FakeOpenAI, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = admin_config(target.base_url, worker.base_url)
    with GatewayProcess(config, tmp_path, env={"MPR_ADMIN_KEY": ADMIN_KEY}, workers=2) as gw:
        pids: set[int] = set()

        def both_answered() -> bool:
            with httpx.Client() as client:  # a new connection each time: the kernel spreads them
                body = client.get(gw.url + "/admin/status", headers=AUTH, timeout=5).json()
            assert body["workers"] == 2
            pids.add(body["pid"])
            return len(pids) == 2

        wait_until(both_answered, timeout=15, interval=0.01)
        assert gw.proc is not None and gw.proc.pid not in pids  # the supervisor serves nothing itself
