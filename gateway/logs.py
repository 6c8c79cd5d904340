"""Structured JSON-line logging (no prompt text unless the operator opts in).

Cheap enough for a per-request access log: records are encoded with msgspec, timestamps are
formatted once per second, and lines are written in batches, at most every ``flush_interval_s``
(and on warnings, errors, shutdown and fork) instead of once per line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import weakref
from typing import IO, Any

import msgspec

_encoder = msgspec.json.Encoder(enc_hook=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra`` fields."""

    _SKIP = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {"message", "asctime", "color_message"}

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._stamp = ""

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        return self.encode(record).decode()

    def encode(self, record: logging.LogRecord) -> bytes:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        skip = self._SKIP
        for key, value in record.__dict__.items():
            if key not in skip and key[0] != "_":
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(entry)


MAX_PENDING_BYTES = 1 << 16  # lines held before a write, at most (a flush interval's worth at thousands of req/s)
_HANDLERS: weakref.WeakSet[JsonLineHandler] = weakref.WeakSet()


class JsonLineHandler(logging.Handler):
    """Writes JSON lines to a binary stream. Log records (``emit``: events an operator or a test
    waits for, such as a worker registering) are written at once, after the lines held before
    them; the access log's lines (``write_line`` / ``write_entry``, one per request) are written in
    batches: within ``flush_interval_s`` (a timer on the running event loop; at once without one),
    at once on WARNING+, when :data:`MAX_PENDING_BYTES` are held, and on flush, close and fork.

    The handler holds the lines itself rather than relying on the stream's buffer: with
    ``PYTHONUNBUFFERED`` set (as containers and the Ansible role set it) ``sys.stdout.buffer`` is
    the raw file, and every line would be a ``write`` system call of its own.
    """

    def __init__(self, stream: IO[bytes] | None = None, flush_interval_s: float = 0.2) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stdout.buffer
        self.formatter_json = JsonFormatter()
        self.setFormatter(self.formatter_json)
        self.flush_interval_s = flush_interval_s
        self._last_flush = time.monotonic()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0  # past this the timer is taken as lost (its loop closed)
        self._guard = threading.Lock()  # lines may come from other threads
        _HANDLERS.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._add(self.formatter_json.encode(record) + b"\n", True)
        except Exception:  # never let logging break a request
            self.handleError(record)

    def write_entry(self, entry: dict[str, Any], level: int = logging.INFO) -> None:
        """Write a ready-made entry (``ts`` added here) as one line: batched, at once on WARNING+."""
        try:
            self._add(_encoder.encode({"ts": self.formatter_json._timestamp(time.time()), **entry}) + b"\n", level >= logging.WARNING)
        except Exception:  # never let logging break a request
            pass

    def write_line(self, line: bytes) -> None:
        """Write one ready-made INFO line (ending with a newline), batched."""
        try:
            self._add(line, False)
        except Exception:  # never let logging break a request
            pass

    def _add(self, line: bytes, urgent: bool) -> None:
        with self._guard:
            self._pending.append(line)
            self._pending_bytes += len(line)
            if not urgent and self._pending_bytes < MAX_PENDING_BYTES:
                now = time.monotonic()
                if self._timer is not None:
                    if now < self._due:
                        return
                    # the timer is late: its loop is busy past the interval, or gone
                elif now - self._last_flush < self.flush_interval_s and self._arm(now):
                    return
            data = self._take()
        self._write(data)

    def _arm(self, now: float) -> bool:
        """A flush ``flush_interval_s`` from now on the running loop; False without one."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._timer = loop.call_later(self.flush_interval_s, self.flush)
        self._due = now + 2 * self.flush_interval_s
        return True

    def _take(self) -> bytes:
        """The held lines, taken (call with the guard held)."""
        data = b"".join(self._pending) if len(self._pending) != 1 else self._pending[0]
        self._pending.clear()
        self._pending_bytes = 0
        self._last_flush = time.monotonic()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return data

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # a raw stream may take part of it
            written = self.stream.write(view)
            if written is None:  # a non-blocking stream that takes nothing now: drop rather than spin
                break
            view = view[written:]
        self.stream.flush()

    def flush(self) -> None:
        try:
            with self._guard:
                data = self._take() if self._pending else b""
            if data:
                self._write(data)
            else:
                self.stream.flush()
        except (OSError, ValueError):
            pass


def _flush_all() -> None:
    """Before a fork: nothing held, or the child would write it again."""
    for handler in list(_HANDLERS):
        handler.flush()


os.register_at_fork(before=_flush_all)


class AccessLog:
    """One JSON line per request, written straight to the root :class:`JsonLineHandler`.

    Same line shape as a ``gateway.access`` logging record, without the per-record machinery of
    :mod:`logging` (record object, filters, formatter): about a fifth of a pass-through request's
    CPU otherwise. Falls back to the logger when JSON logging is not set up (e.g. in tests).
    """

    __slots__ = ("logger", "_handler")

    def __init__(self, name: str = "gateway.access") -> None:
        self.logger = logging.getLogger(name)
        self._handler: JsonLineHandler | None = None

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def write(self, message: str, fields: dict[str, Any]) -> None:
        handler = self._handler
        if handler is None:
            handler = next((h for h in logging.getLogger().handlers if isinstance(h, JsonLineHandler)), None)
            if handler is None or not self.logger.propagate or self.logger.handlers:
                self.logger.info(message, extra=fields)
                return
            self._handler = handler
        entry = {"ts": handler.formatter_json._timestamp(time.time()), "level": "info", "logger": self.logger.name, "msg": message, **fields}
        handler.write_line(_encoder.encode(entry) + b"\n")  # one dict, one encoding


def setup_logging(level: str = "INFO") -> None:
    # Records need no caller frame, thread or process fields: skipping them halves their cost.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = JsonLineHandler()
    from gateway.telemetry.logcontext import install_filter

    install_filter(handler)  # request_id, trace_id, span_id on every record
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
