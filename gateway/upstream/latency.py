"""Recent call latencies of one endpoint: a bounded ring, percentiles computed only when asked."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

WINDOW = 256  # samples kept per endpoint


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q`` (0..1) percentile of sorted ``ordered`` by nearest rank; None when empty."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))  # ceil(q * n), within 1..n
    return ordered[rank - 1]


class LatencyWindow:
    """The last :data:`WINDOW` latencies (ms). Recording is an append; nothing is sorted until read."""

    __slots__ = ("samples",)

    def __init__(self, size: int = WINDOW) -> None:
        self.samples: deque[float] = deque(maxlen=size)

    def record(self, ms: float) -> None:
        self.samples.append(ms)

    def summary(self) -> dict[str, float | int | None]:
        """``{"p50", "p99", "samples"}`` in ms (rounded to 0.01), None without samples."""
        ordered = sorted(self.samples)
        p50, p99 = percentile(ordered, 0.5), percentile(ordered, 0.99)
        return {
            "p50": None if p50 is None else round(p50, 2),
            "p99": None if p99 is None else round(p99, 2),
            "samples": len(ordered),
        }
