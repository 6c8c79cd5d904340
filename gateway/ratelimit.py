"""Per-key token buckets (pure, clock injected)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


def effective_burst(rate: float, burst: int) -> int:
    """The bucket size: ``burst``, or one second of ``rate`` when 0; at least 1."""
    return max(1, burst or math.ceil(rate))


class TokenBuckets:
    """``rate`` tokens per second up to ``burst``; one request takes one token."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = effective_burst(rate, burst)
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float:
        """0.0 when allowed, else the seconds until a token is available."""
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            if len(self._buckets) >= self.max_keys and key not in self._buckets:
                self._buckets.clear()
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate
