"""Reload the routes file: validate, build and start a new runtime, swap it in, retire the old one.

A refused reload (a file that does not load, a runtime that does not start, a draining server)
changes nothing: the old config keeps serving. The old runtime is stopped (sessions closed, prober
stopped) once the last request that started on it is done, streams included. With ``serve
--workers N`` a worker asked over HTTP validates the file, then ``broadcast()`` (a SIGHUP to the
supervisor, which forwards it to every worker, this one included) and each worker reloads itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gateway.config import ConfigError, Role
from gateway.config.source import ConfigSource, config_hash, load_source
from gateway.endpoints.responses.serving import carry_index
from gateway.refinement.stages import StageBackend
from gateway.reload.changes import restart_only_changes
from gateway.reload.live import Live, RuntimeRef
from gateway.serving import heap
from gateway.runtime import Runtime, build_runtime

log = logging.getLogger("gateway.reload")

MakeLive = Callable[[Runtime, ConfigSource], Live]


@dataclass(frozen=True)
class ReloadOutcome:
    """``reloaded`` (this process swapped), ``signalled`` (the file is valid and every worker was
    told), ``refused`` (``errors``: (key path, message) pairs; nothing changed) or ``draining``."""

    status: Literal["reloaded", "signalled", "refused", "draining"]
    previous: str
    source: ConfigSource | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)
    restart_required: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"status": self.status, "previous": self.previous}
        if self.source is not None:
            body["config"] = self.source.as_dict()
        if self.status in ("reloaded", "signalled"):
            body["restart_required"] = self.restart_required
        if self.errors:
            body["errors"] = [{"path": path, "message": message} for path, message in self.errors]
        return body


class Reloader:
    """Reloads ``path`` into ``ref`` (one reload at a time)."""

    def __init__(
        self,
        ref: RuntimeRef,
        path: Path,
        make_live: MakeLive,
        builtin_stages: Mapping[Role, StageBackend] | None = None,
        broadcast: Callable[[], None] | None = None,
    ) -> None:
        self.ref, self.path, self.make_live = ref, path, make_live
        self.builtin_stages = dict(builtin_stages or {})
        self.broadcast = broadcast
        self._lock = asyncio.Lock()
        self._retiring: dict[asyncio.Task[None], Live] = {}
        self._signalled: set[asyncio.Task[ReloadOutcome]] = set()

    async def request(self, trigger: str) -> ReloadOutcome:
        """An operator's reload (``POST /admin/reload``): here, or validated then broadcast to every worker."""
        if self.broadcast is None:
            return await self.reload(trigger)
        previous = self.ref.current
        try:
            config, source = load_source(self.path)
        except ConfigError as exc:
            return self._refused(trigger, previous.source.hash, exc.errors)
        try:
            self.broadcast()
        except OSError as exc:  # the supervisor is gone: at least this worker reloads
            log.warning("could not signal the supervisor (%s): reloading this worker only", exc)
            return await self.reload(trigger)
        log.info("config %s at %s is valid: every worker told to reload (%s)", source.hash, source.source, trigger)
        changes = restart_only_changes(previous.runtime.config, config)
        return ReloadOutcome("signalled", previous.source.hash, source, restart_required=changes)

    def on_signal(self, trigger: str = "SIGHUP") -> None:
        """SIGHUP: reload in a task (the outcome is logged)."""
        task = asyncio.get_running_loop().create_task(self.reload(trigger))
        self._signalled.add(task)
        task.add_done_callback(self._signalled.discard)

    def catch_up(self) -> None:
        """Once SIGHUP is handled at start-up: if the file changed since this process read it (a
        SIGHUP may have come while it started, when it was ignored), reload now."""
        try:
            current = config_hash(self.path.read_bytes())
        except OSError:
            return
        if current != self.ref.current.source.hash:
            self.on_signal("changed while starting")

    async def reload(self, trigger: str) -> ReloadOutcome:
        """Re-read the file and the key files, start a new runtime and swap it in."""
        async with self._lock:
            old = self.ref.current
            try:
                config, source = load_source(self.path)
            except ConfigError as exc:
                return self._refused(trigger, old.source.hash, exc.errors)
            if self.ref.draining:
                log.warning("config reload (%s) ignored: the gateway is shutting down", trigger)
                return ReloadOutcome("draining", old.source.hash, source)
            try:
                runtime = build_runtime(config, self.builtin_stages, telemetry=old.runtime.telemetry, events=old.runtime.events,
                                        registrations=old.runtime.registrations)
            except (OSError, ValueError) as exc:  # a key file that vanished since validation
                return self._refused(trigger, old.source.hash, [("<runtime>", f"{type(exc).__name__}: {exc}")])
            try:
                await runtime.start()
            except Exception as exc:  # noqa: BLE001 - whatever stops it starting refuses the reload
                await runtime.stop()
                return self._refused(trigger, old.source.hash, [("<runtime>", f"{type(exc).__name__}: {exc}")])
            carry_index(old.runtime, runtime)
            live = self.make_live(runtime, source)
            if self.ref.draining:  # SIGTERM came while it started
                await runtime.stop()
                return ReloadOutcome("draining", old.source.hash, source)
            self.ref.swap(live)
            runtime.telemetry.forget_stages()
            changes = restart_only_changes(old.runtime.config, config)
            log.info(
                "config %s loaded from %s (was %s; %s): %d target(s)%s",
                source.hash,
                source.source,
                old.source.hash,
                trigger,
                len(config.targets),
                f"; needs a restart to apply: {', '.join(changes)}" if changes else "",
            )
            runtime.events.publish(
                "config.reloaded",
                {"hash": source.hash, "previous": old.source.hash, "source": source.source, "trigger": trigger, "restart_required": changes},
            )
            self._retire(old)
            return ReloadOutcome("reloaded", old.source.hash, source, restart_required=changes)

    def _refused(self, trigger: str, current: str, errors: list[tuple[str, str]]) -> ReloadOutcome:
        log.error(
            "config reload (%s) refused, still serving %s: %s",
            trigger,
            current,
            "; ".join(f"{path}: {message}" for path, message in errors),
        )
        return ReloadOutcome("refused", current, errors=errors)

    def _retire(self, old: Live) -> None:
        async def retire() -> None:
            await old.wait_idle()
            await old.runtime.stop()
            log.info("config %s retired (its last request finished)", old.source.hash)

        task = asyncio.get_running_loop().create_task(retire(), context=contextvars.Context())  # not the request's log context
        self._retiring[task] = old
        task.add_done_callback(self._retired)

    def _retired(self, done: asyncio.Task[None]) -> None:
        self._retiring.pop(done, None)
        asyncio.get_running_loop().call_soon(heap.resettle)  # the old runtime's cycles, once nothing holds it

    @property
    def retiring(self) -> int:
        """Old runtimes swapped out and still running: they stop after their last request."""
        return len(self._retiring)

    async def close(self) -> None:
        """At shutdown: stop every old runtime still retiring (the server has let its requests finish)."""
        for task in list(self._signalled):
            task.cancel()
        retiring = list(self._retiring.items())
        for task, _ in retiring:
            task.cancel()
        for task, live in retiring:
            try:
                await task
            except asyncio.CancelledError:
                await live.runtime.stop()
