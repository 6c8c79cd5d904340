"""``serve --workers``: worker count, restart decisions, the port claim and the supervisor."""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time

import pytest

from gateway.cli import build_parser
from gateway.config.models import ServerConfig
from gateway.serving.supervisor import Supervisor
from gateway.serving.workers import after_exit, available_cpus, claim_port, forwarded_signal, reuse_port_socket, worker_count


def test_cli_wins_then_config_then_cpus() -> None:
    assert worker_count(3, 2, 8) == 3
    assert worker_count(None, 2, 8) == 2
    assert worker_count(None, None, 8) == 8
    assert worker_count(1, None, 8) == 1
    assert available_cpus() >= 1


def test_workers_flag_and_config_key_are_validated() -> None:
    assert build_parser().parse_args(["serve", "--config", "x", "--workers", "2"]).workers == 2
    assert build_parser().parse_args(["serve", "--config", "x"]).workers is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--config", "x", "--workers", "0"])
    assert ServerConfig(workers=4).workers == 4 and ServerConfig().workers is None
    with pytest.raises(ValueError):
        ServerConfig(workers=0)


def test_after_exit_restarts_only_a_worker_that_had_started() -> None:
    assert after_exit(30.0, False, 5.0) == "restart"
    assert after_exit(0.5, False, 5.0) == "give_up"
    assert after_exit(0.5, True, 5.0) == "done"


def test_the_first_signal_drains_later_ones_escalate() -> None:
    assert forwarded_signal(True) == signal.SIGTERM
    assert forwarded_signal(False) == signal.SIGINT


def test_claim_port_resolves_0_and_refuses_a_taken_port() -> None:
    port = claim_port("127.0.0.1", 0)
    assert port > 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            claim_port("127.0.0.1", taken.getsockname()[1])


def test_reuse_port_sockets_share_a_port() -> None:
    first = reuse_port_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = reuse_port_socket("127.0.0.1", port)
    try:
        first.listen()
        second.listen()
        assert second.getsockname()[1] == port
    finally:
        first.close()
        second.close()


SLEEPER = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); time.sleep(30)"


def _signal_later(supervisor: Supervisor, delay_s: float) -> None:
    threading.Timer(delay_s, supervisor._on_signal, (signal.SIGTERM, None)).start()


def test_supervisor_forwards_sigterm_and_exits_0_when_every_worker_did() -> None:
    sup = Supervisor([sys.executable, "-c", SLEEPER], 2, {}, stop_timeout_s=10, min_uptime_s=0)
    _signal_later(sup, 1.0)
    started = time.monotonic()
    assert sup.run(poll_s=0.05) == 0
    assert time.monotonic() - started < 5
    assert [w.proc.returncode for w in sup.workers] == [0, 0]


def test_supervisor_gives_up_when_a_worker_cannot_start() -> None:
    sup = Supervisor([sys.executable, "-c", "import sys; sys.exit(3)"], 2, {}, stop_timeout_s=5, min_uptime_s=30)
    assert sup.run(poll_s=0.05) == 1


def test_supervisor_restarts_a_worker_that_exits_while_serving() -> None:
    sup = Supervisor([sys.executable, "-c", "import time; time.sleep(0.3)"], 1, {}, stop_timeout_s=5, min_uptime_s=0.1)
    first: list[int] = []
    threading.Timer(0.15, lambda: first.append(sup.workers[0].proc.pid)).start()
    _signal_later(sup, 1.2)
    sup.run(poll_s=0.05)
    assert first and sup.workers[0].proc.pid != first[0]  # replaced at least once


def test_supervisor_kills_a_worker_that_ignores_sigterm_past_the_timeout() -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(30)"
    sup = Supervisor([sys.executable, "-c", stubborn], 1, {}, stop_timeout_s=0.5, min_uptime_s=0)
    _signal_later(sup, 0.5)
    assert sup.run(poll_s=0.05) == 1
    assert sup.workers[0].proc.returncode == -signal.SIGKILL
