"""The shadow refinement task in process: it records its own result, turns failures into a
fallback outcome (never an exception), is cancelled with the request, and is held until done."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.endpoints.shadow import ShadowRefinement
from gateway.refinement.controls import RefineControls
from gateway.refinement.pipeline import RefinementOutcome


class _Refiner:
    def __init__(self, behaviour: str = "ok", delay_s: float = 0.0) -> None:
        self.behaviour = behaviour
        self.delay_s = delay_s
        self.modes: list[str] = []
        self.cancelled = False

    async def refine(self, text: str, requested: Any = None, *, use_gate: bool = True, headers: Any = None, mode: str = "apply", cache: bool = True) -> RefinementOutcome:
        self.modes.append(mode)
        try:
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.behaviour == "raise":
            raise RuntimeError("a refinement bug")
        return RefinementOutcome(text, text.upper(), None, "cleaner", 1.0)


async def test_the_outcome_is_recorded_and_returned_with_mode_shadow() -> None:
    recorded: list[RefinementOutcome] = []
    tasks: set[asyncio.Task[Any]] = set()
    refiner = _Refiner()
    shadow = ShadowRefinement(refiner, "abc", RefineControls(), recorded.append, tasks)  # type: ignore[arg-type]
    assert tasks == {shadow.task}
    outcome = await shadow.outcome()
    assert outcome.refined == "ABC" and outcome.header == "cleaner"
    assert recorded == [outcome] and refiner.modes == ["shadow"]
    await asyncio.sleep(0)
    assert not tasks  # released once done


async def test_a_refinement_bug_becomes_a_fallback_outcome() -> None:
    recorded: list[RefinementOutcome] = []
    shadow = ShadowRefinement(_Refiner("raise"), "abc", RefineControls(), recorded.append, set())  # type: ignore[arg-type]
    outcome = await shadow.outcome()
    assert outcome.header == "fallback;reason=internal_error"
    assert outcome.refined == outcome.original == "abc" and not outcome.changed
    assert recorded == [outcome]


async def test_a_recording_failure_does_not_reach_the_response() -> None:
    def broken(_: RefinementOutcome) -> None:
        raise ValueError("metrics down")

    shadow = ShadowRefinement(_Refiner(), "abc", RefineControls(), broken, set())  # type: ignore[arg-type]
    assert (await shadow.outcome()).header == "cleaner"


async def test_cancelling_the_waiting_request_cancels_the_refinement() -> None:
    refiner = _Refiner(delay_s=10)
    recorded: list[RefinementOutcome] = []
    shadow = ShadowRefinement(refiner, "abc", RefineControls(), recorded.append, set())  # type: ignore[arg-type]
    waiter = asyncio.ensure_future(shadow.outcome())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.sleep(0)
    assert shadow.task.cancelled() and refiner.cancelled
    assert recorded == []  # a cancelled refinement is not a result


async def test_a_shadow_cancelled_on_its_own_ends_the_wait_with_a_fallback() -> None:
    shadow = ShadowRefinement(_Refiner(delay_s=10), "abc", RefineControls(), lambda _: None, set())  # type: ignore[arg-type]
    asyncio.get_running_loop().call_later(0.01, shadow.cancel)  # e.g. the gateway shutting down
    outcome = await shadow.outcome()
    assert outcome.header == "fallback;reason=cancelled"
