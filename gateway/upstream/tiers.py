"""Which endpoint of a pool takes the next request: least outstanding, with a tier preference.

Pure: endpoints in, one endpoint out. With ``prefer`` (``gpu`` or ``cpu``) the endpoints of the
*other* tier are a spill-over: they take traffic only when no endpoint of the preferred tier (or of
no declared tier) is ready, or when every ready one is saturated (``outstanding >= max_inflight``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class Candidate(Protocol):
    """What the choice reads of an endpoint."""

    outstanding: int
    cooldown_until: float
    tier: str | None


def spill_over(endpoint: Candidate, prefer: str) -> bool:
    """True when ``endpoint`` belongs to the tier that ``prefer`` keeps in reserve."""
    return prefer in ("gpu", "cpu") and endpoint.tier is not None and endpoint.tier != prefer


def saturated(endpoint: Candidate, max_inflight: int) -> bool:
    """An endpoint with ``max_inflight`` requests or more in flight takes more only as a last resort."""
    return endpoint.outstanding >= max_inflight


E = TypeVar("E", bound=Candidate)


def choose(candidates: Sequence[E], now: float, prefer: str = "none", max_inflight: int = 4) -> E | None:
    """The endpoint for the next request among ``candidates``:

    1. the least busy ready (not cooling down) endpoint of the primary tier that is not saturated;
    2. else the least busy ready, unsaturated spill-over endpoint;
    3. else the least busy ready endpoint of any tier (all saturated);
    4. else (all cooling down) the one that recovers first; None when there are no candidates.
    """
    if not candidates:
        return None
    ready = [e for e in candidates if e.cooldown_until <= now]
    if not ready:
        return min(candidates, key=lambda e: e.cooldown_until)
    primary = [e for e in ready if not spill_over(e, prefer) and not saturated(e, max_inflight)]
    if primary:
        return min(primary, key=lambda e: e.outstanding)
    reserve = [e for e in ready if spill_over(e, prefer) and not saturated(e, max_inflight)]
    if reserve:
        return min(reserve, key=lambda e: e.outstanding)
    return min(ready, key=lambda e: e.outstanding)
