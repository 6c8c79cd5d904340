"""Value classes passed between the stage runner, the merge and the response."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from gateway.config.models import Role
from gateway.refinement.gate import GateDecision

CacheUse = Literal["hit", "miss", "off"]
"""How the refinement cache served an outcome: ``off`` = not consulted (disabled, bypassed)."""


@dataclass(frozen=True, slots=True)
class StageResult:
    """What one stage call produced: ``output`` text, or ``error`` (``timeout``, ``http_500``, ...)."""

    role: Role
    output: str | None = None
    error: str | None = None
    latency_ms: float = 0.0
    fallback_from: str | None = None
    """The adapter's error when the built-in cleaner answered in its place."""
    arm: str | None = None
    """``stable`` or ``candidate`` when the stage has a canary (:mod:`gateway.refinement.canary`)."""


@dataclass(frozen=True, slots=True)
class StageVerdict:
    """The merge's judgement of one stage; ``reason`` says why it was not accepted."""

    role: Role
    output: str | None
    accepted: bool
    reason: str | None = None
    drift: float | None = None
    length_ratio: float | None = None
    latency_ms: float = 0.0
    error: str | None = None
    fallback_from: str | None = None
    """The adapter's error when the built-in cleaner answered in its place."""

    def as_dict(self) -> dict[str, Any]:
        extra = {"fallback_from": self.fallback_from} if self.fallback_from else {}
        return {
            "output": self.output,
            "accepted": self.accepted,
            "reason": self.reason,
            "drift": self.drift,
            "length_ratio": self.length_ratio,
            "latency_ms": round(self.latency_ms, 2),
            "error": self.error,
            **extra,
        }


@dataclass(frozen=True, slots=True)
class MergeResult:
    """The refined prompt, the description to add, and a verdict per stage that ran."""

    refined: str
    description: str | None
    applied: tuple[Role, ...]
    verdicts: dict[Role, StageVerdict] = field(default_factory=dict)


NO_RESULTS: Mapping[Role, StageResult] = MappingProxyType({})
"""The stage results of an outcome no stage ran for: one shared, read-only mapping (a skip makes no dict)."""


@dataclass(slots=True)
class RefinementOutcome:
    """Everything the response needs: refined text, description, header value, details.

    A value: never changed once made (the refinement cache hands one to many requests; make a
    new one with :func:`dataclasses.replace`). Not ``frozen``: every request makes one, and a
    frozen dataclass's ``__init__`` costs 4× as much (≈0.7 µs against 0.16 µs for these nine
    fields, on the skip path's budget: issue 24).
    """

    original: str
    refined: str
    description: str | None
    header: str
    elapsed_ms: float
    gate: GateDecision | None = None
    merged: MergeResult | None = None
    results: Mapping[Role, StageResult] = field(default_factory=dict)
    cache: CacheUse = "off"

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
            "cache": self.cache,
        }
