"""Building and running the uvicorn server (one process, or each worker of ``serve --workers N``):
a graceful SIGTERM that drains first, the uvicorn config, the process's logging."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

from gateway.serving import heap


def graceful_server(
    config: Any, runtime: Any, drain_s: float, tick: Callable[[Any, int], None] | None = None, repeated_sigterm_escalates: bool = True
) -> Any:
    """A uvicorn server whose SIGTERM drains: the runtime turns ``draining`` (``/ready`` and new
    requests answer 503) for ``drain_s`` while still listening, then uvicorn's graceful shutdown runs
    (stop accepting, in-flight requests finish within the grace period) and the process exits 0.
    ``tick(server, counter)`` runs on uvicorn's ~0.1 s ticks (a worker's metrics snapshots). A
    worker of ``--workers N`` passes ``repeated_sigterm_escalates=False``: systemd signals every
    process of the unit and the supervisor forwards its own, so a second SIGTERM is a duplicate
    (the supervisor escalates with SIGINT). ``runtime`` is anything with a ``draining`` flag: the
    app's :class:`~gateway.reload.live.RuntimeRef`, which sets it on the current runtime."""
    import uvicorn

    class GracefulServer(uvicorn.Server):
        drain_until: float | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            if runtime is not None:
                runtime.draining = True
            if sig == signal.SIGTERM and not repeated_sigterm_escalates and (self.drain_until is not None or self.should_exit):
                return
            if sig == signal.SIGTERM and drain_s > 0 and self.drain_until is None and not self.should_exit:
                self.drain_until = time.monotonic() + drain_s
                return
            super().handle_exit(sig, frame)
            # uvicorn re-raises a captured SIGTERM after its graceful shutdown, so the process died
            # of the signal (exit -15) instead of exiting 0; a drained shutdown is a clean exit.
            self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)  # the app's start-up ran: the runtime is built
            heap.settle()

        async def on_tick(self, counter: int) -> bool:
            if tick is not None:
                tick(self, counter)
            if self.drain_until is not None and time.monotonic() >= self.drain_until:
                self.should_exit = True
            return bool(await super().on_tick(counter))

    return GracefulServer(config)


def serve(app: object, host: str, port: int, grace_s: float, log_level: str, drain_s: float = 0.0) -> None:
    config = uvicorn_config(app, host, port, grace_s, log_level)
    graceful_server(config, getattr(getattr(app, "state", None), "ref", None), drain_s).run()


def uvicorn_config(app: object, host: str, port: int, grace_s: float, log_level: str) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=grace_s,  # was int(grace_s) if grace_s else None: 0 waited forever
        lifespan="on",
        log_level=log_level.lower(),
        ws="none",  # no WebSocket route: the protocol's modules are never imported
    )


def setup_logging(level: str) -> None:
    from gateway.logs import setup_logging as setup

    setup(level)
