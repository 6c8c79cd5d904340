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

Workers are forked (``MPR_WORKER_START=spawn``: started as ``python -m gateway.serving.worker``
instead). Before the first fork the supervisor imports what a worker runs and loads the read-only
resources every worker uses, the lexicon and the trigram language model
(:func:`gateway.serving.worker.preload`), then freezes them out of the collector's sight
(:func:`gc.freeze`): every worker shares those pages with the supervisor copy-on-write instead of
building its own (the model's 32 MB of C heap are never written; Python objects stay shared until
a worker writes a reference count on their page). A worker restarted later is forked from the same
image. The supervisor runs no thread and no event loop, so a fork copies nothing half-done.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from gateway.serving import heap
from gateway.serving.worker import METRICS_DIR_ENV, WORKERS_ENV, forked_worker, preload
from gateway.serving.workers import after_exit, claim_port, forwarded_signal
from gateway.state.registrations import REGISTRY_DIR_ENV
from gateway.telemetry.multiprocess import clear_snapshots

log = logging.getLogger("gateway.supervisor")

KILL_AFTER_S = 10.0  # past drain + grace, a worker still running is killed
START_ENV = "MPR_WORKER_START"  # "fork" (the default) or "spawn"
_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}

WorkerMain = Callable[[list[int]], int]
"""A forked worker's body: gets the SIGTERMs that arrived before it ran (see
:func:`gateway.serving.worker.early_stop`), returns the exit status."""


class ForkedProcess:
    """A forked worker, with the part of :class:`subprocess.Popen`'s interface the supervisor uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                self.returncode = 255
                return self.returncode
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)  # -N for a signal, as Popen
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes] | ForkedProcess
    started: float


class Supervisor:
    """Runs ``count`` workers until a signal, then waits for them. A worker is ``command`` (a
    command line, run with ``env``) or a forked copy of this process running ``command(early)``
    (a :data:`WorkerMain`, with ``env`` set in its ``os.environ``)."""

    def __init__(
        self, command: Sequence[str] | WorkerMain, count: int, env: dict[str, str], stop_timeout_s: float, min_uptime_s: float = 5.0
    ) -> None:
        self.command: list[str] | WorkerMain = command if callable(command) else list(command)
        self.count, self.env = count, env
        self.stop_timeout_s, self.min_uptime_s = stop_timeout_s, min_uptime_s
        self.workers: list[_Worker] = []
        self._signals: list[int] = []
        self._reloads = 0
        self.failed = False

    def _spawn(self) -> _Worker:
        proc: subprocess.Popen[bytes] | ForkedProcess
        if callable(self.command):
            proc = self._fork(self.command)
        else:
            proc = subprocess.Popen(self.command, env=self.env, process_group=0, preexec_fn=_ignore_sighup)
        log.info("worker %d started", proc.pid)
        return _Worker(proc, time.monotonic())

    def _fork(self, main: WorkerMain) -> ForkedProcess:
        """Fork a worker running ``main``. Signals stay blocked across the fork, so one sent in
        between reaches the supervisor's handlers (parent) or the worker's own (child), never the
        copies of the supervisor's in the child."""
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                _child(main, self.env, blocked)  # never returns
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return ForkedProcess(pid)

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


def _child(main: WorkerMain, env: dict[str, str], mask: set[signal.Signals]) -> None:
    """A forked worker: its own process group, the default signal handling of a new process
    (SIGHUP ignored until its app handles it, a SIGTERM recorded until its server runs), the
    supervisor's environment, then ``main``; exits with its status, never returning into the
    supervisor's code (its copy of the other workers must not be touched)."""
    code = 1
    try:
        os.setpgid(0, 0)
        atexit._clear()  # the supervisor's exit handlers are not this process's
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C that hit the fork: the supervisor's
        from gateway.serving.worker import early_stop

        early = early_stop()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ.update(env)
        code = main(early)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - report it as a crashed process would
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            atexit._run_exitfuncs()  # the worker's own (an exporter's last spans)
            logging.shutdown()
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
        finally:
            os._exit(code)


def _worker_command(path: str, host: str, port: int) -> list[str] | WorkerMain:
    """What each worker runs: forked from this process once it preloaded (the default), else
    ``python -m gateway.serving.worker`` (``MPR_WORKER_START=spawn``, or a thread is running here)."""
    spawned = [sys.executable, "-m", "gateway.serving.worker", "--config", path, "--host", host, "--port", str(port)]
    if os.environ.get(START_ENV, "fork") == "spawn":
        return spawned
    preload(path)
    heap.freeze_preloaded()  # what the workers inherit: out of every collection, so no pass writes to its pages
    if threading.active_count() > 1:  # a fork copies no thread, only the locks they may hold
        log.warning("threads running after preload (%s): workers are spawned instead of forked", threading.enumerate())
        return spawned
    return forked_worker(path, host, port)


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
    path = str(Path(config_path).resolve())
    given_registry = os.environ.get(REGISTRY_DIR_ENV)  # registered workers: every worker process reads them
    registry = Path(given_registry) if given_registry else Path(tempfile.mkdtemp(prefix="mpr-registry-"))
    try:
        command = _worker_command(path, host, port)
        env = {**os.environ, METRICS_DIR_ENV: str(directory), WORKERS_ENV: str(workers), REGISTRY_DIR_ENV: str(registry)}
        return Supervisor(command, workers, env, stop_s + KILL_AFTER_S).run()
    finally:
        if not given:
            shutil.rmtree(directory, ignore_errors=True)
        if not given_registry:
            shutil.rmtree(registry, ignore_errors=True)
