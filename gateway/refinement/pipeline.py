"""The refinement pipeline: cache lookup, gate, concurrent fan-out under a deadline, merge, header value."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
import logging
import time
from collections.abc import Mapping

from gateway.config.models import RefinementConfig, Role
from gateway.refinement.canary import Canary, verdict_outcome
from gateway.refinement.cache_key import cache_key, gateway_version, settings_digest, stage_fingerprint
from gateway.refinement.gate import GateDecision, decide
from gateway.refinement.lexicon import Lexicon
from gateway.refinement.merge import merge
from gateway.refinement.outcome_cache import OutcomeCache
from gateway.refinement.results import NO_RESULTS, MergeResult, RefinementOutcome, StageResult
from gateway.refinement.stages import StageBackend
from gateway.refinement.verdicts import GateMemo
from gateway.telemetry import Telemetry, default_telemetry
from gateway.tenants.meter import current_partition, keyed_refinement

__all__ = ["Gated", "Refiner", "RefinementOutcome", "header_value"]

log = logging.getLogger("gateway.refinement")


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


@dataclass(frozen=True, slots=True)
class Gated:
    """A prompt :meth:`Refiner.settle` sent on to the stages: the gate's verdict (None: not
    consulted) and when its refinement started (``time.perf_counter()``)."""

    gate: GateDecision | None
    started: float


class Refiner:
    """Runs the configured stages concurrently and merges their outputs."""

    def __init__(
        self,
        config: RefinementConfig,
        backends: Mapping[Role, StageBackend],
        vocabulary: Lexicon,
        telemetry: Telemetry | None = None,
        cache: OutcomeCache | None = None,
    ) -> None:
        self.config = config
        self.backends = dict(backends)
        # per request otherwise: hashing a Role (an Enum) runs Python code
        self._default_stages = tuple(r for r in config.stages if r in self.backends)
        self.vocabulary = vocabulary
        self.verdicts = GateMemo()  # the gate's verdicts of prompts seen before (pure: same text, same verdict)
        self.telemetry = telemetry or default_telemetry()
        self.cache = cache
        self._fingerprints = {role: stage_fingerprint(backend) for role, backend in self.backends.items()}
        self._canaries: dict[Role, Canary] = {
            role: canary for role, backend in self.backends.items() if isinstance(canary := getattr(backend, "canary", None), Canary)
        }
        self._settings = settings_digest(config, gateway_version())

    @property
    def canaries(self) -> dict[Role, Canary]:
        """The stages trying a candidate version (:mod:`gateway.refinement.canary`)."""
        return self._canaries

    def stages_for(self, requested: tuple[Role, ...] | None) -> tuple[Role, ...]:
        if requested is None:
            return self._default_stages
        backends = self.backends
        return tuple([r for r in requested if r in backends])

    def settle(
        self, text: str, requested: tuple[Role, ...] | None = None, *, use_gate: bool = True, mode: str = "apply"
    ) -> RefinementOutcome | Gated:
        """The gate first (tens of microseconds, or a memo lookup: a skip never pays a cache
        lookup, a Redis round trip or an await). The outcome, recorded as any refinement, when
        no stage has to run (the gate skips ``text``, or none of ``requested`` is configured);
        else :class:`Gated`, for :meth:`refine`."""
        started = time.perf_counter()
        gate: GateDecision | None = None
        if use_gate or len(text) > self.config.skip_gate.max_prompt_chars or not text.strip():
            partition = current_partition()
            gate = self.verdicts.get(partition, text)
            if gate is None:
                gate = decide(text, self.vocabulary, self.config.skip_gate)
                self.verdicts.put(partition, text, gate)
            if not gate.refine:
                return self._settled(text, f"skipped;reason={gate.reason}", gate, requested, mode, started)
        if not self.stages_for(requested):
            return self._settled(text, "skipped;reason=no_stages", gate, requested, mode, started)
        return Gated(gate, started)

    async def refine(
        self,
        text: str,
        requested: tuple[Role, ...] | None = None,
        *,
        use_gate: bool = True,
        headers: dict[str, str] | None = None,
        mode: str = "apply",
        cache: bool = True,
        gated: Gated | None = None,
    ) -> RefinementOutcome:
        """Refine ``text``; never raises for stage trouble (falls back to the original).

        ``mode`` (``apply``/``shadow``) only labels the metrics and the span; ``cache`` False
        bypasses the refinement cache (``x-mpr-cache: off``); ``gated``: what :meth:`settle`
        (called with the same arguments) returned, so the gate is not consulted twice.
        """
        if gated is None:
            settled = self.settle(text, requested, use_gate=use_gate, mode=mode)
            if isinstance(settled, RefinementOutcome):
                return settled
            gated = settled
        roles = self.stages_for(requested)
        with self.telemetry.refinement(gated.started) as observed:  # `refine` span (tracing on) + metrics
            outcome = await self._cached(text, roles, gated, use_gate=use_gate, headers=headers, use_cache=cache)
            observed.done(outcome, roles, mode)
        return outcome

    def _settled(
        self, text: str, header: str, gate: GateDecision | None, requested: tuple[Role, ...] | None, mode: str, started: float
    ) -> RefinementOutcome:
        """``text`` left as it is without a stage (``header`` says why), observed as :meth:`refine`
        observes a refinement (span, metrics)."""
        outcome = RefinementOutcome(text, text, None, header, (time.perf_counter() - started) * 1000, gate, None, NO_RESULTS)
        self.telemetry.settled(outcome, self._default_stages if requested is None else self.stages_for(requested), mode, started)
        return outcome

    async def _cached(
        self,
        text: str,
        roles: tuple[Role, ...],
        gated: Gated,
        *,
        use_gate: bool,
        headers: dict[str, str] | None,
        use_cache: bool,
    ) -> RefinementOutcome:
        """The cached outcome of the stages (a hit), else a fresh run, stored when settled."""
        gate, started = gated.gate, gated.started
        store = self.cache
        if store is None or not use_cache or keyed_refinement(self.config) is not self.config:  # a key's tighter bounds: not cached
            if store is not None:
                store.count("bypass")
            return await self._refine(text, roles, gate, started, headers)
        fingerprints = self._fingerprints
        if self._canaries:  # a rollback or promotion changes which version answers a prompt
            fingerprints = {role: stage_fingerprint(backend) for role, backend in self.backends.items()}
        key = cache_key(text, roles, use_gate, fingerprints, self._settings, current_partition())  # per tenant
        hit = await store.lookup(key, text, started)
        if hit is not None:
            return hit
        outcome = await self._refine(text, roles, gate, started, headers)
        await store.store(key, outcome)
        return dataclasses.replace(outcome, elapsed_ms=(time.perf_counter() - started) * 1000, cache="miss")

    async def _refine(
        self,
        text: str,
        roles: tuple[Role, ...],
        gate: GateDecision | None,
        started: float,
        headers: dict[str, str] | None,
    ) -> RefinementOutcome:
        """The stages at once, then the merge; never raises (a bug falls back to the original)."""
        try:
            results = await self._fan_out(text, roles, headers)
            with self.telemetry.merge_span():
                merged = merge(text, results, keyed_refinement(self.config), self.vocabulary)
            if self._canaries:
                self._judge(results, merged)
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

    def _judge(self, results: dict[Role, StageResult], merged: MergeResult) -> None:
        """Count each canaried stage's verdict on its arm (the canary may roll back)."""
        for role, canary in self._canaries.items():
            result = results.get(role)
            verdict = merged.verdicts.get(role)
            if result is None or result.arm is None or verdict is None:
                continue
            failed = result.error is not None or result.fallback_from is not None
            outcome = verdict_outcome(failed, verdict.accepted, verdict.reason)
            canary.record(result.arm, outcome, result.latency_ms, verdict.drift)  # type: ignore[arg-type]
            self.telemetry.metrics.canary_verdict(role.value, result.arm, outcome, result.latency_ms / 1000.0, verdict.drift)

    async def _fan_out(self, text: str, roles: tuple[Role, ...], headers: dict[str, str] | None) -> dict[Role, StageResult]:
        """Start every stage at once; whatever is unfinished at the deadline is cancelled."""
        stage = self.telemetry.stage  # the backend's run(), inside a CLIENT span when tracing
        tasks = {role: asyncio.create_task(stage(self.backends[role], text, headers)) for role in roles}
        try:
            await asyncio.wait(tasks.values(), timeout=keyed_refinement(self.config).deadline_s)  # a key's may be shorter
        finally:
            pending = [t for t in tasks.values() if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        results: dict[Role, StageResult] = {}
        for role, task in tasks.items():
            canary = self._canaries.get(role)
            arm = canary.arm(text) if canary is not None else None  # pure and sticky: the arm the call took
            if task.cancelled():
                results[role] = StageResult(role, error="deadline", latency_ms=self.config.deadline_s * 1000, arm=arm)
            elif (exc := task.exception()) is not None:
                log.error("stage %s raised %s", role.value, type(exc).__name__, exc_info=exc)
                results[role] = StageResult(role, error="internal_error", arm=arm)
            else:
                results[role] = task.result()
        return results

    @staticmethod
    def _unchanged(text: str, header: str, started: float, gate: GateDecision | None) -> RefinementOutcome:
        return RefinementOutcome(text, text, None, header, (time.perf_counter() - started) * 1000, gate)
