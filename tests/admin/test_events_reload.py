"""An open ``GET /admin/events`` stream (the dashboard keeps one for ever) must not keep old
runtimes alive: ten reloads with a stream open leave one runtime, the probe traffic of one, and
the stream carries on with the new runtime's events."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.admin.conftest import ADMIN_KEY, AUTH, EventReader, status, wait_until
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

PROBE_S = 0.2
RELOADS = 10


def probes_over(target: FakeOpenAI, seconds: float) -> int:
    """How many health probes ``target`` received over ``seconds``."""
    before = target.probes
    time.sleep(seconds)
    return target.probes - before


@pytest.mark.timeout(90)
def test_ten_reloads_with_an_event_stream_open_leave_one_runtime(tmp_path: Path) -> None:
    with FakeOpenAI() as target:
        config = routes(target.base_url, server={"probe_interval_s": PROBE_S})
        with GatewayProcess(config, tmp_path, env={"MPR_ADMIN_KEY": ADMIN_KEY}) as gw, EventReader(gw.url) as reader:
            baseline = probes_over(target, 2.0)
            for _ in range(RELOADS):
                reloaded = httpx.post(gw.url + "/admin/reload", headers=AUTH, timeout=10)
                assert reloaded.status_code == 200 and reloaded.json()["status"] == "reloaded", reloaded.text
            wait_until(lambda: gw.logs().count(" retired (its last request finished)") == RELOADS, timeout=10)
            body = status(gw)
            after = probes_over(target, 2.0)
            wait_until(lambda: len(reader.of("config.reloaded")) == RELOADS, timeout=5)
            stream_open = not reader.ended.is_set()
            chat = httpx.post(
                gw.base_url + "/chat/completions", json={"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}, timeout=10
            )
    assert body["runtimes"] == {"serving": 1, "retiring": 0}
    assert body["events"]["subscribers"] == 1 and stream_open  # the stream stayed, on the new runtime
    assert baseline > 0
    assert after <= baseline * 2 + 4, (baseline, after)  # eleven runtimes would probe eleven times as often
    assert chat.status_code == 200
