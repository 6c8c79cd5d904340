"""Refinement metrics: label values from outcomes and verdicts (pure), and recording one refinement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway.config.models import Role
from gateway.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from gateway.refinement.results import RefinementOutcome
    from gateway.refinement.results import StageVerdict

DESCRIPTION_OUTCOMES = ("accepted", "echo", "gibberish", "empty", "error")


def stage_outcome(verdict: StageVerdict) -> str:
    """The metric outcome of one stage verdict."""
    if verdict.accepted:
        return "accepted"
    if verdict.error is not None:
        return "timeout" if verdict.error in ("timeout", "deadline") else "error"
    if verdict.reason in ("drift", "length"):
        return "rejected_drift"
    return "rejected_other"


def description_outcome(verdict: StageVerdict) -> str:
    """``accepted`` or why the describer's output was dropped: ``echo``, ``gibberish``, ``empty``, ``error``."""
    if verdict.accepted:
        return "accepted"
    return verdict.reason if verdict.reason in DESCRIPTION_OUTCOMES else "error"


def refinement_result(outcome: RefinementOutcome) -> str:
    """``refined``, ``unchanged``, ``skipped`` or ``fallback`` (the refinement duration's label)."""
    header = outcome.header
    if outcome.merged is not None:
        if outcome.merged.applied:
            return "refined"
        return "fallback" if header.startswith("fallback") else "unchanged"
    return "skipped" if header.startswith("skipped") else "fallback"


def record_unstaged(m: Metrics, outcome: RefinementOutcome, roles: Sequence[Role]) -> None:
    """Metrics for a refinement no stage ran for (skipped, or failed before its stages)."""
    gate = outcome.gate
    m.unstaged(None if gate is None else (gate.refine, gate.reason), roles, outcome.header.startswith("skipped"), outcome.elapsed_ms / 1000.0)


def record_refinement(m: Metrics, outcome: RefinementOutcome, roles: Sequence[Role], mode: str = "apply") -> None:
    """Metrics for one finished refinement (both with and without tracing). A cache hit ran no
    gate and no stage: only its duration (the lookup) is recorded."""
    if outcome.cache == "hit":
        m.refinement(refinement_result(outcome), outcome.elapsed_ms / 1000.0)
        return
    gate = outcome.gate
    merged = outcome.merged
    if merged is None:  # no stage ran: skipped, or failed before the stages
        record_unstaged(m, outcome, roles)
        return
    if gate is not None:
        m.gate_decision(gate.refine, gate.reason)
    for role, verdict in merged.verdicts.items():
        m.stage_outcome(role.value, stage_outcome(verdict))
        if verdict.drift is not None:
            m.stage_drift_value(role.value, mode, verdict.drift)
    described = merged.verdicts.get(Role.DESCRIBER)
    if described is not None:
        m.description_outcome(description_outcome(described), mode)
    for role, result in outcome.results.items():
        m.stage_latency(role.value, result.latency_ms / 1000.0)
    m.refinement(refinement_result(outcome), outcome.elapsed_ms / 1000.0)
