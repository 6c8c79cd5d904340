"""The refinement cache: merged outcomes kept in the runtime's :class:`~gateway.state.SharedState`.

Lookups and stores never fail a request: a store that raises, or an entry that cannot be decoded,
counts as ``error`` and the prompt is refined as on a miss. Only settled outcomes are stored
(:func:`cacheable`); a failed stage's outcome is transient and refined again next time.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

from gateway.refinement.cache_codec import decode_outcome, encode_outcome
from gateway.refinement.results import RefinementOutcome
from gateway.state import SharedState
from gateway.telemetry.metrics import Metrics

log = logging.getLogger("gateway.refinement")

HIT_SUFFIX = ";cache=hit"
"""Appended to ``x-mpr-refinement`` when the outcome came from the cache."""

CacheResult = Literal["hit", "miss", "bypass", "error"]


def cacheable(outcome: RefinementOutcome) -> bool:
    """Whether ``outcome`` may be reused: not a fallback, and no stage erred, timed out or was
    answered by the built-in stand-in (those depend on the moment, not on the prompt)."""
    if outcome.header.startswith("fallback"):
        return False
    merged = outcome.merged
    if merged is None:
        return True
    return all(v.error is None and v.fallback_from is None for v in merged.verdicts.values())


class OutcomeCache:
    """Reads and writes outcomes under keys from :func:`gateway.refinement.cache_key.cache_key`."""

    def __init__(self, state: SharedState, ttl_s: float, metrics: Metrics) -> None:
        self.state = state
        self.ttl_s = ttl_s
        self.metrics = metrics

    def count(self, result: CacheResult) -> None:
        self.metrics.refinement_cache(result)

    async def lookup(self, key: str, text: str, started: float) -> RefinementOutcome | None:
        """The cached outcome for ``text`` (its ``elapsed_ms`` the time since ``started``), or None."""
        try:
            data = await self.state.cache_get(key)
            if data is None:
                self.count("miss")
                return None
            outcome = decode_outcome(data, text, (time.perf_counter() - started) * 1000, HIT_SUFFIX)
        except Exception as exc:  # noqa: BLE001 - the cache never fails a request
            log.warning("refinement cache lookup failed (%s); refining", type(exc).__name__)
            self.count("error")
            return None
        self.count("hit")
        return outcome

    async def store(self, key: str, outcome: RefinementOutcome) -> None:
        """Keep ``outcome`` when :func:`cacheable`."""
        if not cacheable(outcome):
            return
        try:
            await self.state.cache_put(key, encode_outcome(outcome), self.ttl_s)
        except Exception as exc:  # noqa: BLE001 - best effort
            log.warning("refinement cache store failed (%s)", type(exc).__name__)
            self.count("error")
