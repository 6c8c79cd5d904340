"""The refinement cache's value (pure): a :class:`RefinementOutcome` as compact msgpack and back.

Stored: the refined text (None when it is the prompt), the description, the header, the gate's
decision and each stage's verdict. Not stored: the prompt (the request brings it back), the raw
stage results and the timing (a hit's latency is the lookup's).
"""

from __future__ import annotations

import msgspec

from gateway.config.models import Role
from gateway.refinement.gate import GateDecision
from gateway.refinement.results import MergeResult, RefinementOutcome, StageVerdict


class _Verdict(msgspec.Struct, array_like=True, frozen=True):
    role: str
    output: str | None
    accepted: bool
    reason: str | None
    drift: float | None
    length_ratio: float | None
    latency_ms: float
    error: str | None
    fallback_from: str | None


class _Gate(msgspec.Struct, array_like=True, frozen=True):
    refine: bool
    reason: str
    unknown_words: tuple[str, ...]
    tokens: tuple[str, ...]


class _Merged(msgspec.Struct, array_like=True, frozen=True):
    applied: tuple[str, ...]
    verdicts: tuple[_Verdict, ...]


class _Entry(msgspec.Struct, array_like=True, frozen=True):
    refined: str | None
    description: str | None
    header: str
    gate: _Gate | None
    merged: _Merged | None


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Entry)


def encode_outcome(outcome: RefinementOutcome) -> bytes:
    """The stored form of ``outcome``."""
    gate = outcome.gate
    merged = outcome.merged
    return _ENCODER.encode(
        _Entry(
            refined=None if outcome.refined == outcome.original else outcome.refined,
            description=outcome.description,
            header=outcome.header,
            gate=None if gate is None else _Gate(gate.refine, gate.reason, gate.unknown_words, gate.tokens),
            merged=None
            if merged is None
            else _Merged(
                tuple(role.value for role in merged.applied),
                tuple(
                    _Verdict(
                        v.role.value, v.output, v.accepted, v.reason, v.drift, v.length_ratio, v.latency_ms, v.error, v.fallback_from
                    )
                    for v in merged.verdicts.values()
                ),
            ),
        )
    )


def decode_outcome(data: bytes, original: str, elapsed_ms: float, header_suffix: str = "") -> RefinementOutcome:
    """The outcome stored as ``data`` for the prompt ``original``; ``ValueError`` when ``data`` is
    not a stored outcome (another format, corrupt)."""
    try:
        entry = _DECODER.decode(data)
        gate = None if entry.gate is None else GateDecision(entry.gate.refine, entry.gate.reason, entry.gate.unknown_words, entry.gate.tokens)
        refined = original if entry.refined is None else entry.refined
        merged = None
        if entry.merged is not None:
            verdicts = {
                Role(v.role): StageVerdict(
                    Role(v.role), v.output, v.accepted, v.reason, v.drift, v.length_ratio, v.latency_ms, v.error, v.fallback_from
                )
                for v in entry.merged.verdicts
            }
            merged = MergeResult(refined, entry.description, tuple(Role(r) for r in entry.merged.applied), verdicts)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise ValueError(f"not a cached refinement outcome: {type(exc).__name__}") from None
    return RefinementOutcome(
        original, refined, entry.description, entry.header + header_suffix, elapsed_ms, gate, merged, {}, "hit"
    )
