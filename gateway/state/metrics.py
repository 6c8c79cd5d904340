"""``mpr_state_backend_up`` and ``mpr_state_errors_total``, read from the state's status at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gateway.state import SharedState


class StateCollector:
    """A Prometheus collector over ``source()``'s :meth:`~gateway.state.SharedState.status`."""

    def __init__(self, source: Callable[[], SharedState]) -> None:
        self.source = source

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        status = self.source().status()
        kind = str(status.get("kind", "unknown"))
        up = GaugeMetricFamily("mpr_state_backend_up", "1 when the shared-state backend answers, else 0 (local fallback)", labels=["kind"])
        up.add_metric([kind], 1.0 if status.get("reachable") else 0.0)
        errors = CounterMetricFamily(
            "mpr_state_errors", "Shared-state calls that failed (errors and timeouts), by operation", labels=["kind", "op"]
        )
        for op, count in sorted((status.get("errors") or {}).items()):
            errors.add_metric([kind, op], float(count))
        yield up
        yield errors
