"""``mpr-gateway serve --workers 2`` forks its workers from a supervisor that loaded the lexicon and
the trigram language model: the workers share those pages, serve refined requests, and a worker
killed while serving is forked again and serves. ``MPR_WORKER_START=spawn`` still starts them as
``python -m gateway.serving.worker``."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.reliability.test_shutdown import BODY
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

CHAT = "/v1/chat/completions"
MB = 2**20


def _serving(gw: GatewayProcess, count: int, timeout_s: float = 30) -> list[psutil.Process]:
    """The supervisor's children, once ``count`` of them listen on the port (their start-up ran)."""
    assert gw.proc is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        children = psutil.Process(gw.proc.pid).children()
        listening = [
            c for c in children if any(s.status == psutil.CONN_LISTEN and s.laddr.port == gw.port for s in _sockets(c))
        ]
        if len(listening) >= count:
            return listening
        time.sleep(0.1)
    raise AssertionError(f"{count} workers not listening: {gw.log_path.read_text()[-2000:]}")


def _sockets(proc: psutil.Process) -> list:  # type: ignore[type-arg]
    try:
        return proc.net_connections("tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _refined(gw: GatewayProcess, n: int) -> None:
    for i in range(n):  # a new connection each: the kernel spreads them over the workers
        prompt = "explian how a hsah tabel handels colisions" if i % 2 else "Explain how a hash table handles collisions."
        r = httpx.post(gw.url + CHAT, json={**BODY, "stream": False, "messages": [{"role": "user", "content": prompt}]}, timeout=10)
        assert r.status_code == 200, r.text


@pytest.mark.timeout(90)
def test_forked_workers_share_the_language_model_and_a_killed_one_is_forked_again(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        gw = GatewayProcess(routes(fake.base_url, fake.base_url), tmp_path, workers=2)
        with gw:
            assert gw.proc is not None
            supervisor = psutil.Process(gw.proc.pid)
            workers = _serving(gw, 2)
            for worker in workers:  # forked: the supervisor's command line, not ``-m gateway.serving.worker``
                assert worker.cmdline() == supervisor.cmdline()
            _refined(gw, 12)
            for worker in workers:
                info = worker.memory_full_info()
                # shared with the supervisor: the model's 32 MB of C heap, the lexicon, the imports
                assert info.rss - info.uss > 60 * MB, (info.rss / MB, info.uss / MB)
                assert info.uss < info.rss / 2, (info.rss / MB, info.uss / MB)

            victim = workers[0]
            time.sleep(max(0.0, victim.create_time() + 5.5 - time.time()))  # past the supervisor's min uptime
            victim.send_signal(signal.SIGKILL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                replaced = [w for w in _serving(gw, 2) if w.pid != victim.pid]
                if len(replaced) == 2:
                    break
                time.sleep(0.1)
            assert len(replaced) == 2, "the killed worker was not replaced"
            newcomer = next(w for w in replaced if w.pid != workers[1].pid)
            assert newcomer.cmdline() == supervisor.cmdline()
            _refined(gw, 12)
            info = newcomer.memory_full_info()
            assert info.rss - info.uss > 60 * MB, (info.rss / MB, info.uss / MB)
        assert gw.proc.returncode == 0, gw.log_path.read_text()[-2000:]


@pytest.mark.timeout(60)
def test_spawned_workers_are_still_available(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        gw = GatewayProcess(routes(fake.base_url, None), tmp_path, workers=2, env={"MPR_WORKER_START": "spawn"})
        with gw:
            workers = _serving(gw, 2)
            assert all("gateway.serving.worker" in w.cmdline() for w in workers)
            _refined(gw, 4)
        assert gw.proc is not None and gw.proc.returncode == 0
