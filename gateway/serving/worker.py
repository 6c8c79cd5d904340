"""One worker of ``serve --workers N`` (``python -m gateway.serving.worker``, started by the supervisor).

The same app, fast path and SIGTERM drain as a single-process ``serve``, on a ``SO_REUSEPORT``
socket of its own. With ``MPR_METRICS_DIR`` set it writes a metrics snapshot there about once a
second and when it exits, and its ``/metrics`` shows the whole server
(:mod:`gateway.telemetry.multiprocess`). It drains and exits by itself when the supervisor dies.

The supervisor forks its workers (:func:`forked_worker`) after :func:`preload`: the same
:func:`run`, minus the imports and resources it already finds loaded.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.serving import heap
from gateway.serving.workers import reuse_port_socket

METRICS_DIR_ENV = "MPR_METRICS_DIR"
WORKERS_ENV = "MPR_WORKERS"  # how many workers the supervisor runs (``GET /admin/status`` says it)
TICKS_PER_SNAPSHOT = 10  # uvicorn ticks every 0.1 s
PRELOAD_MODULES = (
    "gateway.app",
    "gateway.serving.server",
    "gateway.telemetry.multiprocess",
    "prometheus_client.process_collector",
    "uvicorn",
    "uvicorn.lifespan.on",
    "uvicorn.loops.auto",
    "uvicorn.loops.uvloop",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.http.httptools_impl",
    "litestar._kwargs",
    "litestar.exceptions.responses",
    "litestar.middleware.allowed_hosts",
    "litestar.middleware.csrf",
    "litestar.middleware.response_cache",
    "litestar.plugins.attrs",
    "litestar.plugins.opentelemetry",
    "litestar.plugins.pydantic",
    "logging.config",
    "logging.handlers",
)
"""What a worker imports on its way to serving (measured: the modules new in ``sys.modules`` once
its server runs). One missing here is imported by each worker, in memory of its own."""

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
    if not heap.preloaded():  # a spawned worker: preload here (a forked one inherited the supervisor's)
        preload(config_path, config)
        heap.freeze_preloaded()
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


def preload(config_path: str, config: Any = None) -> None:
    """In the supervisor, before forking: import what a worker imports and load the resources its
    runtime loads at start and never writes (the lexicon; the trigram model when the skip gate's
    context check will run; the built-in cleaner's speller when it is on), so that every worker
    shares them. Creates no thread, event loop or
    socket. Anything that fails here is only logged: each worker then loads it itself. ``config``:
    the file already read (a process serving it itself), else it is read here."""
    if config is None:
        try:
            from gateway.config.source import load_source

            config, _ = load_source(config_path)
        except Exception as exc:  # noqa: BLE001 - the worker reports it as a config error
            log.warning("preload: %s not read (%s)", config_path, exc)
    try:
        optional = _optional_modules(config)
    except Exception as exc:  # noqa: BLE001 - the worker reports a real problem itself
        log.warning("preload: optional modules not resolved (%s)", exc)
        optional = ()
    for name in (*PRELOAD_MODULES, *optional):
        try:
            importlib.import_module(name)
        except ImportError as exc:  # an optional implementation (uvloop, httptools) not installed
            log.debug("preload: %s not imported (%s)", name, exc)
        except Exception as exc:  # noqa: BLE001 - a module failing at import: the worker reports it itself
            log.warning("preload: %s not imported (%s: %s)", name, type(exc).__name__, exc)
    if config is None:
        return
    try:
        from gateway.refinement.lexicon import lexicon
        from gateway.refinement.ngram import trigram_model

        lexicon()
        if uses_language_model(config):
            trigram_model()
        if config.refinement.builtin_cleaner != "off":  # the CPU cleaner's speller (≈30 MB), shared too
            from gateway.refinement.spelling import speller

            speller()
    except Exception as exc:  # noqa: BLE001 - a worker reports a real problem itself
        log.warning("preload: resources not loaded before the workers start (%s)", exc)


def _optional_modules(config: Any) -> tuple[str, ...]:
    """What only some configs import at start: the Redis client, the tracing SDK and its OTLP/HTTP
    exporter (not gRPC's: its runtime is not fork-safe)."""
    if config is None:
        return ()
    from gateway.telemetry.tracing import resolve_exporters

    names: tuple[str, ...] = ()
    if config.state.redis_url is not None:
        names += ("gateway.state.failopen", "gateway.state.redis_state")
    exporters = resolve_exporters(config.telemetry, os.environ)
    if exporters:
        names += ("opentelemetry.sdk.resources", "opentelemetry.sdk.trace", "opentelemetry.sdk.trace.export")
    if "otlp_http" in exporters:
        names += ("opentelemetry.exporter.otlp.proto.http.trace_exporter",)
    return names


def uses_language_model(config: Any) -> bool:
    """Whether a runtime of ``config`` loads the trigram model at start (:meth:`Runtime.start`):
    the gate's own rule (:func:`gateway.refinement.gate.uses_language_model`), the stages being the
    configured adapters and the built-in cleaner."""
    from gateway.config.models import Role
    from gateway.refinement import gate

    refinement = config.refinement
    stages = any(config.adapters.get(role) is not None for role in Role) or refinement.builtin_cleaner != "off"
    return gate.uses_language_model(refinement.skip_gate, stages)


def forked_worker(config_path: str, host: str, port: int) -> Callable[[list[int]], int]:
    """The body of a forked worker: :func:`run` (see :class:`gateway.serving.supervisor.Supervisor`)."""

    def main(early: list[int]) -> int:
        return run(config_path, host, port, early)

    return main


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
