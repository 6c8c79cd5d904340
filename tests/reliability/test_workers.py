"""``mpr-gateway serve --workers 2`` as a real subprocess against the fake target.

* both workers serve requests (each worker's metrics snapshot counts some), and the merged
  ``/metrics`` of whichever worker answers counts every request sent;
* SIGTERM with a stream in flight, to the supervisor or to every process (as systemd does): every
  worker drains (``/ready`` and new requests 503), the stream completes, the supervisor exits 0.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.reliability.helpers import routes_for
from tests.reliability.peers import FaultyPeer
from tests.reliability.test_shutdown import BODY, StreamClient
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess

CHAT = "/v1/chat/completions"


def _requests_total(text: str, route: str = CHAT) -> float:
    pattern = re.compile(r'^mpr_requests_total\{([^}]*)\} (\S+)$', re.M)
    return sum(float(v) for labels, v in pattern.findall(text) if f'route="{route}"' in labels)


def _gauge(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.M)
    assert match, f"{name}{{{labels}}} missing"
    return float(match.group(1))


def _worker_counts(directory: Path) -> dict[int, float]:
    counts = {}
    for path in directory.glob("worker-*.json"):
        snap = json.loads(path.read_text())
        series = snap["counters"].get("mpr_requests", [])
        counts[snap["pid"]] = sum(value for labels, value in series if labels[0] == CHAT)
    return counts


@pytest.mark.timeout(90)
def test_two_workers_share_the_port_and_metrics_count_every_request(tmp_path: Path) -> None:
    sent = 60
    metrics_dir = tmp_path / "metrics"
    with FakeOpenAI() as target:
        gw = GatewayProcess(routes_for(target.base_url, None), tmp_path, env={"MPR_METRICS_DIR": str(metrics_dir)}, workers=2)
        with gw:
            assert gw.proc is not None
            workers = psutil.Process(gw.proc.pid).children()
            assert len(workers) == 2
            for _ in range(sent):  # a new connection each: the kernel spreads them over both sockets
                r = httpx.post(gw.url + CHAT, json={**BODY, "stream": False}, timeout=10)
                assert r.status_code == 200, r.text
            time.sleep(1.6)  # every worker's snapshot flushed (~1 s)
            per_worker = _worker_counts(metrics_dir)
            scrapes = [httpx.get(gw.url + "/metrics", timeout=5).text for _ in range(4)]
            ready = httpx.get(gw.url + "/ready", timeout=5)
        rc = gw.proc.returncode
        final = _worker_counts(metrics_dir)
    assert sorted(per_worker) == sorted(w.pid for w in workers)
    assert all(count > 0 for count in per_worker.values()), per_worker  # both workers served
    assert sum(per_worker.values()) == sent
    for text in scrapes:  # whichever worker answered the scrape: the whole server
        assert _requests_total(text) == sent
        assert _gauge(text, "mpr_server_workers", 'state="live"') == 2
        assert "process_cpu_seconds_total" in text and "mpr_request_duration_seconds_count" in text
    assert ready.status_code == 200
    assert rc == 0
    assert sum(final.values()) == sent  # final snapshots on exit


@pytest.mark.timeout(60)
@pytest.mark.parametrize("to", ["supervisor", "every_process"])  # every_process: systemd's KillMode=control-group
def test_sigterm_drains_every_worker_lets_the_stream_finish_and_exits_0(tmp_path: Path, to: str) -> None:
    peer = FaultyPeer(slow_s=2.5, stream_gap_s=0.05).start()
    peer.fault = "slow_stream"
    # a drain window of 2 s: the 24 probes below take ~0.75 s on a loaded 2-core machine
    tree = routes_for(peer.base_url, None, server={"shutdown_grace_s": 10, "drain_delay_s": 2.0}, target_timeout_s=30)
    gw = GatewayProcess(tree, tmp_path, workers=2).start()
    try:
        stream = StreamClient(gw.url)
        stream.start()
        assert stream.first_bytes.wait(10)
        assert gw.proc is not None
        workers = psutil.Process(gw.proc.pid).children()
        sigterm_at = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        if to == "every_process":  # each worker gets it twice: a duplicate, not an escalation
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        # new connections land on either worker: each must be draining
        ready = [httpx.get(gw.url + "/ready", timeout=2).status_code for _ in range(12)]
        new = [httpx.post(gw.url + CHAT, json={**BODY, "stream": False}, timeout=2).status_code for _ in range(12)]
        rc = gw.proc.wait(20)
        exit_s = time.monotonic() - sigterm_at
        stream.join(10)
    finally:
        gw.stop()
        peer.stop()
    assert set(ready) == {503}, ready
    assert set(new) == {503}, new
    assert stream.complete, (stream.status, stream.error, stream.raw[-200:])
    assert rc == 0
    assert exit_s < 2.0 + 2.5 + 3.0
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    assert peer.in_flight == 0


@pytest.mark.timeout(60)
def test_a_worker_signalled_while_it_starts_still_exits_0(tmp_path: Path) -> None:
    """The supervisor forwards SIGTERM to a worker that may still be importing and building the app
    (before uvicorn listens for signals): it must drain and exit 0, not die of the signal."""
    import subprocess
    import sys

    import yaml

    from tests.support.gateway_proc import REPO, free_port

    with FakeOpenAI() as target:
        config = tmp_path / "routes.yaml"
        config.write_text(yaml.safe_dump(routes_for(target.base_url, None, server={"drain_delay_s": 0.3, "shutdown_grace_s": 5})))
        log = tmp_path / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "gateway.serving.worker", "--config", str(config), "--host", "127.0.0.1", "--port", str(free_port())],
            cwd=REPO,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while "gateway.runtime" not in log.read_text(errors="replace") and time.monotonic() < deadline:
                time.sleep(0.005)  # the app is being built: uvicorn does not listen for signals yet
            worker.send_signal(signal.SIGTERM)
            rc = worker.wait(20)
        finally:
            if worker.poll() is None:
                worker.kill()
    assert rc == 0, log.read_text(errors="replace")[-2000:]
