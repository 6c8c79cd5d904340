"""The refinement pipeline: gate, concurrent fan-out under a deadline, merge, header value."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.config.models import RefinementConfig, Role
from gateway.refinement.gate import GateDecision, decide
from gateway.refinement.lexicon import Lexicon
from gateway.refinement.merge import merge
from gateway.refinement.results import MergeResult, StageResult
from gateway.refinement.stages import StageBackend
from gateway.telemetry import Telemetry, default_telemetry

log = logging.getLogger("gateway.refinement")


@dataclass(frozen=True, slots=True)
class RefinementOutcome:
    """Everything the response needs: refined text, description, header value, details."""

    original: str
    refined: str
    description: str | None
    header: str
    elapsed_ms: float
    gate: GateDecision | None = None
    merged: MergeResult | None = None
    results: Mapping[Role, StageResult] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.refined != self.original or bool(self.description)

    def details(self) -> dict[str, object]:
        """The ``mpr`` object of ``return_details`` and ``/v1/refine``."""
        stages = {}
        if self.merged is not None:
            stages = {role.value: verdict.as_dict() for role, verdict in self.merged.verdicts.items()}
        return {
            "original": self.original,
            "refined": self.refined,
            "description": self.description,
            "refinement": self.header,
            "refine_ms": round(self.elapsed_ms, 2),
            "gate": None if self.gate is None else self.gate.as_dict(),
            "stages": stages,
        }


def header_value(merged: MergeResult) -> str:
    """``x-mpr-refinement`` for a run that reached the merge."""
    if merged.applied:
        return ",".join(r.value for r in merged.applied)
    failed = [v for v in merged.verdicts.values() if v.error is not None]
    rejected = [v.role.value for v in merged.verdicts.values() if v.error is None]
    if failed and not rejected:
        kinds = sorted({v.error for v in failed if v.error})
        return f"fallback;reason={kinds[0] if len(kinds) == 1 else 'stage_errors'}"
    value = f"none;rejected={','.join(rejected)}"
    if failed:
        value += f";failed={','.join(v.role.value for v in failed)}"
    return value


class Refiner:
    """Runs the configured stages concurrently and merges their outputs."""

    def __init__(
        self,
        config: RefinementConfig,
        backends: Mapping[Role, StageBackend],
        vocabulary: Lexicon,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.config = config
        self.backends = dict(backends)
        # per request otherwise: hashing a Role (an Enum) runs Python code
        self._default_stages = tuple(r for r in config.stages if r in self.backends)
        self.vocabulary = vocabulary
        self.telemetry = telemetry or default_telemetry()

    def stages_for(self, requested: tuple[Role, ...] | None) -> tuple[Role, ...]:
        if requested is None:
            return self._default_stages
        backends = self.backends
        return tuple([r for r in requested if r in backends])

    async def refine(
        self,
        text: str,
        requested: tuple[Role, ...] | None = None,
        *,
        use_gate: bool = True,
        headers: dict[str, str] | None = None,
        mode: str = "apply",
    ) -> RefinementOutcome:
        """Refine ``text``; never raises for stage trouble (falls back to the original).

        ``mode`` (``apply``/``shadow``) only labels the metrics and the span.
        """
        with self.telemetry.refinement() as observed:  # `refine` span (tracing on) + metrics
            outcome = await self._refine(text, requested, use_gate=use_gate, headers=headers)
            observed.done(outcome, self.stages_for(requested), mode)
        return outcome

    async def _refine(
        self,
        text: str,
        requested: tuple[Role, ...] | None,
        *,
        use_gate: bool,
        headers: dict[str, str] | None,
    ) -> RefinementOutcome:
        started = time.perf_counter()
        gate: GateDecision | None = None
        if use_gate or len(text) > self.config.skip_gate.max_prompt_chars or not text.strip():
            gate = decide(text, self.vocabulary, self.config.skip_gate)
            if not gate.refine:
                return self._unchanged(text, f"skipped;reason={gate.reason}", started, gate)
        roles = self.stages_for(requested)
        if not roles:
            return self._unchanged(text, "skipped;reason=no_stages", started, gate)
        try:
            results = await self._fan_out(text, roles, headers)
            with self.telemetry.merge_span():
                merged = merge(text, results, self.config, self.vocabulary)
        except asyncio.CancelledError:
            raise
        except Exception:  # a refinement bug must never fail the user's request
            log.exception("refinement failed; forwarding the original prompt")
            return self._unchanged(text, "fallback;reason=internal_error", started, gate)
        return RefinementOutcome(
            original=text,
            refined=merged.refined,
            description=merged.description,
            header=header_value(merged),
            elapsed_ms=(time.perf_counter() - started) * 1000,
            gate=gate,
            merged=merged,
            results=results,
        )

    async def _fan_out(self, text: str, roles: tuple[Role, ...], headers: dict[str, str] | None) -> dict[Role, StageResult]:
        """Start every stage at once; whatever is unfinished at the deadline is cancelled."""
        stage = self.telemetry.stage  # the backend's run(), inside a CLIENT span when tracing
        tasks = {role: asyncio.create_task(stage(self.backends[role], text, headers)) for role in roles}
        try:
            await asyncio.wait(tasks.values(), timeout=self.config.deadline_s)
        finally:
            pending = [t for t in tasks.values() if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        results: dict[Role, StageResult] = {}
        for role, task in tasks.items():
            if task.cancelled():
                results[role] = StageResult(role, error="deadline", latency_ms=self.config.deadline_s * 1000)
            elif (exc := task.exception()) is not None:
                log.error("stage %s raised %s", role.value, type(exc).__name__, exc_info=exc)
                results[role] = StageResult(role, error="internal_error")
            else:
                results[role] = task.result()
        return results

    @staticmethod
    def _unchanged(text: str, header: str, started: float, gate: GateDecision | None) -> RefinementOutcome:
        return RefinementOutcome(text, text, None, header, (time.perf_counter() - started) * 1000, gate)
