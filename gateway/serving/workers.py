"""Pure decisions and the socket of ``serve --workers N``."""

from __future__ import annotations

import os
import signal
import socket
from typing import Literal


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's core count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def worker_count(cli: int | None, configured: int | None, cpus: int) -> int:
    """``--workers`` wins over ``server.workers``; neither = one per usable CPU."""
    if cli is not None:
        return cli
    if configured is not None:
        return configured
    return max(1, cpus)


def after_exit(uptime_s: float, stopping: bool, min_uptime_s: float) -> Literal["done", "restart", "give_up"]:
    """What the supervisor does when a worker exits: nothing while stopping; a worker that died
    sooner than ``min_uptime_s`` after its start failed to start (bad port, config): give up rather
    than loop; any other exit is restarted."""
    if stopping:
        return "done"
    if uptime_s < min_uptime_s:
        return "give_up"
    return "restart"


def forwarded_signal(first: bool) -> signal.Signals:
    """What the supervisor sends its workers for a SIGTERM/SIGINT it got: SIGTERM (drain) the
    first time, SIGINT (escalate) after; workers ignore a repeated SIGTERM."""
    return signal.SIGTERM if first else signal.SIGINT


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT``: every worker binds its own, and the
    kernel spreads new connections over them (listen() is left to the server)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(False)
    return sock


def claim_port(host: str, port: int) -> int:
    """Check that nothing listens on ``host:port`` yet (a bind without ``SO_REUSEPORT`` fails when
    any socket holds it, so the workers never join a stranger's port group); returns the port,
    resolved when ``port`` is 0. Raises :class:`OSError` when taken."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        return int(sock.getsockname()[1])
