"""The supervisor of ``serve --workers N``: starts the workers, forwards signals, restarts a crash.

Each worker runs in its own process group, so a terminal's Ctrl-C reaches the supervisor only. The
first SIGTERM or SIGINT is forwarded to every worker as SIGTERM: each drains on its own (``/ready``
503 and new requests 503 for ``server.drain_delay_s``, then in-flight requests finish within
``server.shutdown_grace_s``) and exits 0. A worker takes a repeated SIGTERM as a duplicate (systemd's
default ``KillMode=control-group`` signals every process of the unit as well), so any later signal
is forwarded as SIGINT, which escalates (skip the rest of the drain, then cut what is left). The
supervisor exits 0 when every worker did. A worker that exits while the server runs is restarted, unless it died within
``min_uptime_s`` of its start (it cannot start: port, config), which stops the whole server with 1.

SIGHUP (an operator's, or one a worker sends for ``POST /admin/reload``) is forwarded to every
worker: each re-reads the routes file and swaps its runtime (:mod:`gateway.reload`). Workers start
with SIGHUP ignored until their app handles it, so an early one cannot kill a starting worker.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from gateway.serving.worker import METRICS_DIR_ENV, WORKERS_ENV
from gateway.serving.workers import after_exit, claim_port, forwarded_signal
from gateway.state.registrations import REGISTRY_DIR_ENV
from gateway.telemetry.multiprocess import clear_snapshots

log = logging.getLogger("gateway.supervisor")

KILL_AFTER_S = 10.0  # past drain + grace, a worker still running is killed


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    started: float


class Supervisor:
    """Runs ``count`` copies of ``command`` (with ``env``) until a signal, then waits for them."""

    def __init__(self, command: Sequence[str], count: int, env: dict[str, str], stop_timeout_s: float, min_uptime_s: float = 5.0) -> None:
        self.command, self.count, self.env = list(command), count, env
        self.stop_timeout_s, self.min_uptime_s = stop_timeout_s, min_uptime_s
        self.workers: list[_Worker] = []
        self._signals: list[int] = []
        self._reloads = 0
        self.failed = False

    def _spawn(self) -> _Worker:
        proc = subprocess.Popen(self.command, env=self.env, process_group=0, preexec_fn=_ignore_sighup)
        log.info("worker %d started", proc.pid)
        return _Worker(proc, time.monotonic())

    def _on_signal(self, signum: int, _: FrameType | None) -> None:  # any of SIGTERM, SIGINT
        self._signals.append(signum)

    def _on_reload(self, signum: int, _: FrameType | None) -> None:  # SIGHUP
        self._reloads += 1

    def _forward(self, signum: int) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signum)

    def run(self, poll_s: float = 0.1) -> int:
        """Supervise until every worker has exited; 0 when each exited 0 after a signal."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_reload)
        try:
            self.workers = [self._spawn() for _ in range(self.count)]
            deadline: float | None = None
            while True:
                while self._signals:
                    self._signals.pop(0)
                    first = deadline is None
                    if first:
                        deadline = time.monotonic() + self.stop_timeout_s
                    self._forward(forwarded_signal(first))
                if self._reloads:
                    self._reloads = 0
                    if deadline is None:  # stopping: nothing to reload
                        log.info("SIGHUP: every worker reloads its config")
                        self._forward(signal.SIGHUP)
                if deadline is None:
                    self._replace_exited()
                    if self.failed:
                        deadline = time.monotonic() + self.stop_timeout_s
                        self._forward(signal.SIGTERM)
                elif all(w.proc.poll() is not None for w in self.workers):
                    break
                elif time.monotonic() > deadline:
                    self._kill_remaining()
                    break
                time.sleep(poll_s)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._kill_remaining()
        codes = [w.proc.returncode for w in self.workers]
        log.info("workers exited: %s", codes)
        return 1 if self.failed or any(code != 0 for code in codes) else 0

    def _replace_exited(self) -> None:
        for i, worker in enumerate(self.workers):
            code = worker.proc.poll()
            if code is None:
                continue
            decision = after_exit(time.monotonic() - worker.started, False, self.min_uptime_s)
            if decision == "give_up":
                log.error("worker %d exited with %s right after its start: stopping the server", worker.proc.pid, code)
                self.failed = True
                return
            log.warning("worker %d exited with %s: restarting it", worker.proc.pid, code)
            self.workers[i] = self._spawn()

    def _kill_remaining(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                log.error("worker %d did not exit in time: killed", worker.proc.pid)
                worker.proc.kill()
                worker.proc.wait()


def _ignore_sighup() -> None:
    """In a new worker before exec: SIGHUP ignored (inherited) until its app handles it."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def serve_workers(config_path: str, host: str, port: int, workers: int, stop_s: float) -> int:
    """``serve`` with ``workers`` processes on one port (see :mod:`gateway.serving`)."""
    try:
        port = claim_port(host, port)
    except OSError as exc:
        print(f"cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    given = os.environ.get(METRICS_DIR_ENV)
    directory = Path(given) if given else Path(tempfile.mkdtemp(prefix="mpr-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    clear_snapshots(directory)  # a previous server's counters are not this one's
    log.info("serving on %s:%d with %d workers (metrics in %s)", host, port, workers, directory)
    command = [sys.executable, "-m", "gateway.serving.worker", "--config", str(Path(config_path).resolve()), "--host", host, "--port", str(port)]
    env = {**os.environ, METRICS_DIR_ENV: str(directory), WORKERS_ENV: str(workers)}
    given_registry = os.environ.get(REGISTRY_DIR_ENV)  # registered workers: every worker process reads them
    registry = Path(given_registry) if given_registry else Path(tempfile.mkdtemp(prefix="mpr-registry-"))
    env[REGISTRY_DIR_ENV] = str(registry)
    try:
        return Supervisor(command, workers, env, stop_s + KILL_AFTER_S).run()
    finally:
        if not given:
            shutil.rmtree(directory, ignore_errors=True)
        if not given_registry:
            shutil.rmtree(registry, ignore_errors=True)
