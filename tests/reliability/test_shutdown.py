"""Graceful shutdown of the real ``mpr-gateway serve`` process on SIGTERM.

* with ``server.drain_delay_s``: for that long ``/ready`` answers 503 ``draining`` and new requests
  503 in OpenAI's shape (``retry-after``) while the port still accepts; then the port closes, the
  in-flight streams finish within ``server.shutdown_grace_s`` and the process exits 0.
* a stream longer than the grace period is cut when it runs out and the process still exits 0,
  within the grace period plus a little.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.helpers import figures, routes_for, sse_events
from tests.reliability.peers import FaultyPeer
from tests.support.gateway_proc import GatewayProcess

BODY = {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": "count slowly"}]}


class StreamClient(threading.Thread):
    """One streaming request in a thread; records when the first bytes came and the whole body."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.first_bytes = threading.Event()
        self.raw = b""
        self.error: str | None = None
        self.status = 0

    def run(self) -> None:
        try:
            with httpx.Client(timeout=30) as client, client.stream("POST", self.url + "/v1/chat/completions", json=BODY) as r:
                self.status = r.status_code
                for chunk in r.iter_raw():
                    self.raw += chunk
                    self.first_bytes.set()
        except httpx.HTTPError as exc:
            self.error = type(exc).__name__
        finally:
            self.first_bytes.set()

    @property
    def complete(self) -> bool:
        events = sse_events(self.raw)
        return self.status == 200 and bool(events) and events[-1] == b"[DONE]" and not any(e.startswith(b'{"error"') for e in events)


def _start(tmp_path: Path, peer: FaultyPeer, **server: Any) -> GatewayProcess:
    tree = routes_for(peer.base_url, None, server=server, target_timeout_s=30)
    return GatewayProcess(tree, tmp_path).start()


def _refused(url: str) -> bool:
    try:
        httpx.get(url + "/health", timeout=1)
    except httpx.ConnectError:
        return True
    except httpx.HTTPError:
        return False
    return False


@pytest.mark.timeout(60)
def test_sigterm_drains_then_lets_streams_finish_and_exits_0(tmp_path: Path) -> None:
    peer = FaultyPeer(slow_s=2.5, stream_gap_s=0.05).start()
    peer.fault = "slow_stream"
    gw = _start(tmp_path, peer, shutdown_grace_s=10, drain_delay_s=1.0)
    try:
        streams = [StreamClient(gw.url) for _ in range(3)]
        for s in streams:
            s.start()
        for s in streams:
            assert s.first_bytes.wait(10)
        assert gw.proc is not None
        sigterm_at = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        ready = httpx.get(gw.url + "/ready", timeout=2)
        new = httpx.post(gw.url + "/v1/chat/completions", json={**BODY, "stream": False}, timeout=2)
        health = httpx.get(gw.url + "/health", timeout=2)
        refused_at = None
        while time.monotonic() - sigterm_at < 5:
            if _refused(gw.url):
                refused_at = time.monotonic() - sigterm_at
                break
            time.sleep(0.05)
        rc = gw.proc.wait(15)
        exit_s = time.monotonic() - sigterm_at
        for s in streams:
            s.join(10)
    finally:
        gw.stop()
        peer.stop()
    finished = sum(s.complete for s in streams)
    figures(
        "shutdown_drain",
        streams_in_flight=len(streams),
        streams_finished=finished,
        ready_while_draining=ready.status_code,
        new_request_while_draining=new.status_code,
        port_closed_after_s=None if refused_at is None else round(refused_at, 2),
        exit_code=rc,
        exit_after_s=round(exit_s, 2),
        upstream_in_flight_after=peer.in_flight,
    )
    assert ready.status_code == 503 and ready.json()["draining"] is True
    assert new.status_code == 503
    err = new.json()["error"]
    assert err["code"] == "service_unavailable" and err["type"] and "param" in err and new.headers.get("retry-after")
    assert health.status_code == 200  # alive, just not taking new work
    assert refused_at is not None and 0.9 <= refused_at < 2.0, refused_at  # stops accepting after the drain delay
    assert finished == len(streams), [(s.status, s.error, s.raw[-200:]) for s in streams]
    assert rc == 0
    assert exit_s < 1.0 + 2.5 + 2.0
    assert peer.in_flight == 0


@pytest.mark.timeout(60)
def test_sigterm_cuts_streams_longer_than_the_grace_period_and_exits_0(tmp_path: Path) -> None:
    peer = FaultyPeer(slow_s=20, stream_gap_s=0.05).start()
    peer.fault = "slow_stream"
    gw = _start(tmp_path, peer, shutdown_grace_s=1.0)
    try:
        stream = StreamClient(gw.url)
        stream.start()
        assert stream.first_bytes.wait(10)
        assert gw.proc is not None
        sigterm_at = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        refused, t_refused = False, None
        while time.monotonic() - sigterm_at < 3:
            if _refused(gw.url):
                refused, t_refused = True, time.monotonic() - sigterm_at
                break
            time.sleep(0.05)
        rc = gw.proc.wait(15)
        exit_s = time.monotonic() - sigterm_at
        stream.join(10)
        time.sleep(0.3)
    finally:
        gw.stop()
        peer.stop()
    figures(
        "shutdown_grace",
        grace_s=1.0,
        stream_complete=stream.complete,
        port_closed_after_s=None if t_refused is None else round(t_refused, 2),
        exit_code=rc,
        exit_after_s=round(exit_s, 2),
        upstream_in_flight_after=peer.in_flight,
    )
    assert refused and t_refused is not None and t_refused < 0.5  # no drain delay: stops accepting at once
    assert not stream.complete  # cut when the grace period ran out
    assert rc == 0
    assert 1.0 <= exit_s < 1.0 + 2.0
    assert peer.in_flight == 0  # the upstream call was closed too
