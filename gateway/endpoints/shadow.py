"""A shadow-mode refinement: a task beside the target call that records its own result.

The task writes the shadow metric and the audit line when it ends, so a stream never waits for
it; non-streaming responses await it (latency ≈ max(target, refinement)). It is bounded by the
refinement deadline like any refinement, cancelled with the request when the client leaves, and
held in a set until done (asyncio keeps only weak references to tasks). Whatever goes wrong in it
ends as a ``fallback`` outcome: shadow refinement never affects the response.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from gateway.refinement.controls import RefineControls
from gateway.refinement.pipeline import Refiner
from gateway.refinement.results import RefinementOutcome

log = logging.getLogger("gateway.chat")

Record = Callable[[RefinementOutcome], None]


def _fallback(text: str, reason: str, started: float) -> RefinementOutcome:
    return RefinementOutcome(text, text, None, f"fallback;reason={reason}", (time.perf_counter() - started) * 1000)


async def _run(refiner: Refiner, text: str, controls: RefineControls, record: Record) -> RefinementOutcome:
    started = time.perf_counter()
    try:
        outcome = await refiner.refine(text, controls.stages, use_gate=controls.skip_gate, mode="shadow", cache=controls.cache)
    except asyncio.CancelledError:
        raise
    except Exception:  # a refinement bug must never reach the response
        log.exception("shadow refinement failed; the response is not affected")
        outcome = _fallback(text, "internal_error", started)
    try:
        record(outcome)
    except Exception:  # noqa: BLE001 - nor may recording it
        log.exception("recording a shadow refinement failed")
    return outcome


class ShadowRefinement:
    """One shadow refinement of ``text``, started at construction (needs a running loop)."""

    __slots__ = ("task", "text", "_started")

    def __init__(self, refiner: Refiner, text: str, controls: RefineControls, record: Record, tasks: set[asyncio.Task[Any]]) -> None:
        self.text = text
        self._started = time.perf_counter()
        self.task: asyncio.Task[RefinementOutcome] = asyncio.get_running_loop().create_task(_run(refiner, text, controls, record))
        tasks.add(self.task)
        self.task.add_done_callback(tasks.discard)

    async def outcome(self) -> RefinementOutcome:
        """Wait for the outcome; the caller's cancellation cancels the refinement too."""
        try:
            return await self.task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            return _fallback(self.text, "cancelled", self._started)  # only the shadow was cancelled (shutdown)

    def cancel(self) -> None:
        self.task.cancel()
