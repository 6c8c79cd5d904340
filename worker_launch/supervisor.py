"""Run vLLM, wait until it serves the expected LoRAs, then keep it running until told to stop.

Decisions (backoff delay, whether to give up) are pure functions; the :class:`Supervisor` does the I/O.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from types import FrameType
from typing import Literal

import httpx

from worker_launch.command import Command
from worker_launch.config import HealthSettings, RestartPolicy
from worker_launch.logs import log
from worker_launch.probe import describe_missing, fetch_models, is_healthy, listed_model_ids, missing_models
from worker_launch.register import Announcer

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_MODELS_MISSING = 3

StartResult = Literal["ready", "exited", "timeout", "stopped", "models_missing"]


def restart_delay(policy: RestartPolicy, consecutive_failures: int) -> float:
    """Seconds to wait before restart number ``consecutive_failures`` (1-based), capped."""
    exponent = max(consecutive_failures - 1, 0)
    return min(policy.max_delay_s, policy.initial_delay_s * policy.multiplier**exponent)


def failures_after_exit(policy: RestartPolicy, previous_failures: int, uptime_s: float) -> int:
    """Consecutive-failure count after a crash; a long enough uptime starts the count afresh."""
    return 1 if uptime_s >= policy.reset_after_s else previous_failures + 1


def should_give_up(policy: RestartPolicy, total_restarts: int) -> bool:
    """True once ``max_restarts`` (0 = never) restarts have been used."""
    return policy.max_restarts > 0 and total_restarts >= policy.max_restarts


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    started_at: float


class Supervisor:
    """Owns one vLLM process group: start, readiness check, signal forwarding, restarts."""

    def __init__(self, command: Command, url: str, expected_models: tuple[str, ...],
                 health: HealthSettings, policy: RestartPolicy, stop_grace_s: float = 30.0,
                 announcer: Announcer | None = None) -> None:
        self.command = command
        self.announcer = announcer  # registers the node with a gateway while vLLM is ready (--register)
        self.url = url
        self.expected_models = expected_models
        self.health = health
        self.policy = policy
        self.stop_grace_s = stop_grace_s
        self._stop_signal: int | None = None
        self._child: _Child | None = None

    # -- signals -------------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        first = self._stop_signal is None
        self._stop_signal = signum
        log("signal", signal=signal.Signals(signum).name, action="forwarding" if first else "killing")
        if self._child is not None:
            self._signal_group(signum if first else signal.SIGKILL)

    def _signal_group(self, signum: int) -> None:
        if self._child is None:
            return
        try:
            os.killpg(self._child.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    # -- process -------------------------------------------------------------------------------
    def _start(self) -> _Child:
        env = {**os.environ, **self.command.env}
        process = subprocess.Popen(self.command.argv, env=env, stdin=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self._child = _Child(process=process, started_at=time.monotonic())
        log("started", pid=process.pid, url=self.url, models=",".join(self.expected_models))
        return self._child

    def _reap_group(self) -> None:
        """Kill what is left of the process group (vLLM's engine processes) after the leader ended."""
        self._signal_group(signal.SIGKILL)

    def _stop_child(self) -> int | None:
        child = self._child
        if child is None:
            return None
        if child.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                child.process.wait(timeout=self.stop_grace_s)
            except subprocess.TimeoutExpired:
                log("stop_timeout", level="WARNING", pid=child.process.pid, grace_s=self.stop_grace_s)
                self._signal_group(signal.SIGKILL)
                child.process.wait()
        self._reap_group()
        self._child = None
        return child.process.returncode

    def _wait_ready(self, child: _Child) -> StartResult:
        deadline = child.started_at + self.health.startup_timeout_s
        while True:
            if self._stop_signal is not None:
                return "stopped"
            if child.process.poll() is not None:
                return "exited"
            if is_healthy(self.url):
                break
            if time.monotonic() >= deadline:
                return "timeout"
            time.sleep(self.health.poll_interval_s)
        try:
            body = fetch_models(self.url)
        except (httpx.HTTPError, ValueError) as exc:
            log("models_check_failed", level="ERROR", error=str(exc))
            return "models_missing"
        missing = missing_models(body, self.expected_models)
        if missing:
            log("models_missing", level="ERROR", message=describe_missing(missing, listed_model_ids(body)))
            return "models_missing"
        log("ready", pid=child.process.pid, url=self.url,
            startup_s=round(time.monotonic() - child.started_at, 1), models=",".join(self.expected_models))
        return "ready"

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while self._stop_signal is None and time.monotonic() < end:
            time.sleep(min(0.2, end - time.monotonic()))

    # -- main loop -----------------------------------------------------------------------------
    def _wait_exit(self, child: _Child) -> tuple[int, float]:
        """Block until the child ends; after a stop signal, SIGKILL it once the grace period is over."""
        stop_seen: float | None = None
        while child.process.poll() is None:
            if self._stop_signal is not None:
                stop_seen = stop_seen or time.monotonic()
                if time.monotonic() - stop_seen > self.stop_grace_s:
                    self._signal_group(signal.SIGKILL)
            time.sleep(0.2)
        uptime = time.monotonic() - child.started_at
        self._reap_group()
        self._child = None
        return child.process.returncode, uptime

    def run(self) -> int:
        """Start, check, supervise; returns the process exit code for ``mpr-worker launch``."""
        try:
            return self._run()
        finally:
            if self.announcer is not None:
                self.announcer.close()  # deregisters when announced

    def _run(self) -> int:
        log("command", cmd=self.command.shell())
        ever_ready = False
        failures = 0
        restarts = 0
        while True:
            child = self._start()
            result = self._wait_ready(child)
            if result == "stopped":
                self._stop_child()
                log("stopped")
                return EXIT_OK
            if result == "ready":
                ever_ready = True
                if self.announcer is not None:
                    self.announcer.up()
                code, uptime = self._wait_exit(child)
                if self.announcer is not None:
                    self.announcer.down()
                if self._stop_signal is not None:
                    log("stopped", exit_code=code)
                    return EXIT_OK
            else:
                uptime = time.monotonic() - child.started_at
                code = self._stop_child()
                if not ever_ready:
                    log("startup_failed", level="ERROR", reason=result, exit_code=code)
                    return EXIT_MODELS_MISSING if result == "models_missing" else EXIT_FAILED
                log("restart_failed", level="WARNING", reason=result, exit_code=code)
            failures = failures_after_exit(self.policy, failures, uptime)
            if should_give_up(self.policy, restarts):
                log("giving_up", level="ERROR", restarts=restarts, exit_code=code)
                return EXIT_FAILED
            delay = restart_delay(self.policy, failures)
            log("crashed", level="WARNING", exit_code=code, uptime_s=round(uptime, 1), restart_in_s=delay,
                restarts=restarts)
            self._sleep(delay)
            if self._stop_signal is not None:
                log("stopped", exit_code=code)
                return EXIT_OK
            restarts += 1
