"""The refinement audit log: one JSON line per sampled refinement, apply and shadow mode alike.

Opt-in twice over: ``telemetry.audit_sample_rate`` > 0 and ``telemetry.capture_prompts: true``
(the config refuses the first without the second: the lines hold prompt text, which is user
data). Lines go to ``telemetry.audit_path`` (a buffered file, flushed at least every second and
at shutdown) or, without a path, to the JSON log stream under the logger ``gateway.audit``. Both
sinks write the same line shape as every other JSON log line (``ts``, ``level``, ``logger``,
``msg``) plus the fields of :func:`audit_entry`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from gateway.logs import AccessLog, JsonLineHandler
from gateway.telemetry.logcontext import REQUEST_ID

if TYPE_CHECKING:
    from gateway.refinement.results import RefinementOutcome

LOGGER = "gateway.audit"
MESSAGE = "refinement"
FLUSH_INTERVAL_S = 1.0

log = logging.getLogger("gateway.telemetry")


def audit_entry(
    outcome: RefinementOutcome,
    *,
    model: str,
    mode: str,
    refinement: str,
    request_id: str | None = None,
    trace_id: str | None = None,
) -> dict[str, Any]:
    """The audit fields of one refinement (prompt text included: callers have opted in)."""
    merged = outcome.merged
    stages: dict[str, dict[str, Any]] = {}
    if merged is not None:
        for role, v in merged.verdicts.items():
            stages[role.value] = {
                "accepted": v.accepted,
                "reason": v.reason,
                "drift": v.drift,
                "length_ratio": v.length_ratio,
                "latency_ms": round(v.latency_ms, 2),
                "error": v.error,
            }
    gate = outcome.gate
    entry: dict[str, Any] = {"request_id": request_id}
    if trace_id is not None:
        entry["trace_id"] = trace_id
    entry.update(
        model=model,
        mode=mode,
        refinement=refinement,
        refine_ms=round(outcome.elapsed_ms, 2),
        original=outcome.original,
        refined=outcome.refined,
        description=outcome.description,
        gate=None if gate is None else {"refine": gate.refine, "reason": gate.reason},
        stages=stages,
    )
    return entry


def _current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


class AuditLog:
    """Samples refinements at ``sample_rate`` and writes each sampled one as a JSON line."""

    def __init__(self, sample_rate: float, path: Path | None = None, draw: Callable[[], float] = random.random) -> None:
        self.sample_rate = sample_rate
        self.path = path
        self._draw = draw
        self._file: JsonLineHandler | None = None
        self._stream: AccessLog | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        if path is not None:
            # A 64 KiB buffer: a line costs a memory copy; the disk sees a write about once a second.
            self._file = JsonLineHandler(path.open("ab", buffering=1 << 16), flush_interval_s=FLUSH_INTERVAL_S)
        else:
            self._stream = AccessLog(LOGGER)

    def record(self, outcome: RefinementOutcome, *, model: str, mode: str, refinement: str) -> bool:
        """Write ``outcome`` when sampled (request and trace ids from the current context)."""
        if self._draw() >= self.sample_rate:
            return False
        fields = audit_entry(
            outcome, model=model, mode=mode, refinement=refinement, request_id=REQUEST_ID.get(), trace_id=_current_trace_id()
        )
        if self._file is not None:
            self._file.write_entry({"level": "info", "logger": LOGGER, "msg": MESSAGE, **fields})
            self._schedule_flush()
        elif self._stream is not None:
            self._stream.write(MESSAGE, fields)
        return True

    def _schedule_flush(self) -> None:
        """Flush the file within a second of a write, even when no later line comes to do it."""
        if self._flush_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a direct call): write through
            self.flush()
            return
        self._flush_timer = loop.call_later(FLUSH_INTERVAL_S, self.flush)

    def flush(self) -> None:
        self._flush_timer = None
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._file is not None:
            self._file.flush()
            try:
                self._file.stream.close()
            except OSError:
                log.warning("closing the audit log failed", exc_info=True)
            self._file = None
