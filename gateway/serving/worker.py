"""One worker of ``serve --workers N`` (``python -m gateway.serving.worker``, started by the supervisor).

The same app, fast path and SIGTERM drain as a single-process ``serve``, on a ``SO_REUSEPORT``
socket of its own. With ``MPR_METRICS_DIR`` set it writes a metrics snapshot there about once a
second and when it exits, and its ``/metrics`` shows the whole server
(:mod:`gateway.telemetry.multiprocess`). It drains and exits by itself when the supervisor dies.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.serving.workers import reuse_port_socket

METRICS_DIR_ENV = "MPR_METRICS_DIR"
WORKERS_ENV = "MPR_WORKERS"  # how many workers the supervisor runs (``GET /admin/status`` says it)
TICKS_PER_SNAPSHOT = 10  # uvicorn ticks every 0.1 s

log = logging.getLogger("gateway.worker")


def _snapshot_writer(metrics: Any, directory: Path) -> Callable[[bool], None]:
    """``write(final)``: this worker's snapshot into ``directory`` (errors are logged, not raised)."""
    from prometheus_client.process_collector import ProcessCollector

    from gateway.telemetry.multiprocess import take_snapshot, write_snapshot

    process = ProcessCollector(registry=None)

    def write(final: bool) -> None:
        try:
            write_snapshot(directory, take_snapshot(metrics, process, final=final))
        except OSError as exc:  # a full or vanished directory must not stop serving
            log.warning("metrics snapshot not written: %s", exc)

    return write


def early_stop() -> list[int]:
    """Record a SIGTERM that comes before uvicorn listens for it (the imports and the app's build
    take a second or more): the default action would kill the worker (exit -15) while the
    supervisor stops the server. The first tick hands it to the server, which drains as usual."""
    received: list[int] = []
    signal.signal(signal.SIGTERM, lambda sig, frame: received.append(sig))
    return received


def _ticker(write: Callable[[bool], None] | None, parent: int, early: list[int] | None = None) -> Callable[[Any, int], None]:
    """Every tick: a SIGTERM received before the server ran starts its drain. Every ~1 s: write
    the metrics snapshot; if the supervisor is gone, drain and exit."""

    def tick(server: Any, counter: int) -> None:
        if early:
            early.clear()
            server.handle_exit(signal.SIGTERM, None)
        if counter % TICKS_PER_SNAPSHOT:
            return
        if write is not None:
            write(False)
        if os.getppid() != parent and not server.should_exit and getattr(server, "drain_until", None) is None:
            log.error("supervisor %d is gone: draining", parent)
            server.handle_exit(signal.SIGTERM, None)

    return tick


def run(config_path: str, host: str, port: int, early: list[int] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; 0 after a clean shutdown, 2 on a config error. ``early``: the
    SIGTERMs :func:`early_stop` recorded before the server ran."""
    from gateway.app import create_app
    from gateway.serving.server import graceful_server, setup_logging, uvicorn_config
    from gateway.config import ConfigError
    from gateway.config.source import load_source
    from gateway.telemetry.multiprocess import merged_registry

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the app reloads on it: never die of one
    try:
        config, source = load_source(config_path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    setup_logging(config.telemetry.log_level)
    parent = os.getppid()
    app = create_app(
        config, source=source, config_path=config_path, reload_on_sighup=True, broadcast_reload=lambda: os.kill(parent, signal.SIGHUP)
    )
    ref = app.state.ref
    metrics = ref.runtime.telemetry.metrics
    write: Callable[[bool], None] | None = None
    directory = os.environ.get(METRICS_DIR_ENV)
    if directory:
        metrics.expose_through(merged_registry(metrics, Path(directory)))
        write = _snapshot_writer(metrics, Path(directory))

    server_cfg = config.server
    sock = reuse_port_socket(host, port)
    server_config = uvicorn_config(app, host, port, server_cfg.shutdown_grace_s, config.telemetry.log_level)
    server = graceful_server(server_config, ref, server_cfg.drain_delay_s, _ticker(write, parent, early), repeated_sigterm_escalates=False)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if write is not None:
            write(True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    early = early_stop()  # first: the app's imports and build take a while
    parser = argparse.ArgumentParser(prog="python -m gateway.serving.worker", description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    return run(args.config, args.host, args.port, early)


if __name__ == "__main__":
    sys.exit(main())
