"""Cancel a handler the moment its client disconnects (stages and target calls die with it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]


class ClientDisconnected(Exception):
    """The client went away while the gateway was still working on its request."""


class DisconnectWatch:
    """Async context: a watcher task cancels the current task on ``http.disconnect``.

    Use only after the request body has been read. The watcher starts ``delay_s`` after entry, so
    the many requests that finish sooner never pay for a task (a cancelled timer costs ~1 µs);
    a disconnect is then acted on within ``delay_s``. On exit the watcher stops; if it fired, the
    cancellation is absorbed and :class:`ClientDisconnected` is raised instead.
    """

    __slots__ = ("_receive", "_task", "_watcher", "_timer", "_loop", "delay_s", "fired")

    def __init__(self, receive: Receive, delay_s: float = 0.02) -> None:
        self._receive = receive
        self._task: asyncio.Task[Any] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.delay_s = delay_s
        self.fired = False

    def _start(self) -> None:
        self._timer = None
        if self._loop is not None:  # set on entry, before the timer that calls this
            self._watcher = self._loop.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message.get("type") == "http.disconnect":
                self.fired = True
                if self._task is not None:
                    self._task.cancel()
                return

    async def __aenter__(self) -> DisconnectWatch:
        # one loop lookup (on Python 3.11 each asks the OS for the process id: a system call)
        loop = self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task(loop)
        self._timer = loop.call_later(self.delay_s, self._start)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if self._timer is not None:
            self._timer.cancel()
        watcher = self._watcher
        if watcher is not None and not watcher.done():
            watcher.cancel()
        if self.fired:
            task = self._task
            if task is not None and task.cancelling():
                task.uncancel()
            raise ClientDisconnected
        return False
