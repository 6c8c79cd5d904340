"""Prometheus metrics (``GET /metrics``), in a registry of the app's own (no process globals).

Labels are bounded: ``route`` is the matched route template, ``model`` a configured target name
(or ``-``), ``status`` the HTTP status, ``stage`` one of the three roles, ``outcome``/``reason``
small fixed sets. Hot-path children (``.labels(...)``) are cached in plain dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.process_collector import ProcessCollector

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Request latency: from sub-millisecond pass-through to multi-minute generations.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Refinement and stage latency: bounded by the refinement deadline (seconds).
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
TTFB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

STAGE_OUTCOMES = ("accepted", "rejected_drift", "rejected_other", "error", "timeout", "skipped")

PoolSource = Callable[[], Iterable[Any]]
"""Returns the live :class:`EndpointPool` objects (read at scrape time)."""


class _PoolCollector:
    """``mpr_upstream_endpoint_up`` / ``..._outstanding`` from the endpoint pools, at scrape time."""

    def __init__(self) -> None:
        self.sources: list[PoolSource] = []

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily(
            "mpr_upstream_endpoint_up",
            "1 when the upstream endpoint is considered up (last probe or call succeeded), else 0",
            labels=["kind", "pool", "endpoint"],
        )
        outstanding = GaugeMetricFamily(
            "mpr_upstream_endpoint_outstanding_requests",
            "Requests the gateway has in flight to the upstream endpoint",
            labels=["kind", "pool", "endpoint"],
        )
        for source in self.sources:
            for pool in source():
                kind, _, name = pool.name.partition(":")
                for endpoint in pool.endpoints:
                    labels = [kind, name or kind, endpoint.url]
                    up.add_metric(labels, 1.0 if endpoint.up else 0.0)
                    outstanding.add_metric(labels, float(endpoint.outstanding))
        yield up
        yield outstanding


class Metrics:
    """Every gateway metric; one instance per app."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        if process:
            ProcessCollector(registry=r)
        self.requests = Counter(
            "mpr_requests", "HTTP requests answered, by route template, model and status", ["route", "model", "status"], registry=r
        )
        self.request_duration = Histogram(
            "mpr_request_duration_seconds",
            "Time from request start to the last response byte (streams included), by route and model",
            ["route", "model"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("mpr_requests_in_flight", "Requests being served now, by route template", ["route"], registry=r)
        self.stream_ttfb = Histogram(
            "mpr_stream_time_to_first_byte_seconds",
            "Streaming responses: time from request start to the first body byte sent to the client",
            ["model"],
            buckets=TTFB_BUCKETS,
            registry=r,
        )
        self.refinement_duration = Histogram(
            "mpr_refinement_duration_seconds",
            "Wall time of the refinement step (gate, concurrent stages, merge), by result",
            ["result"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.stage_duration = Histogram(
            "mpr_stage_duration_seconds",
            "Latency of one refinement stage call (errors and timeouts included), by stage",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.stage_outcomes = Counter(
            "mpr_stage_outcomes",
            "Refinement stage outcomes: accepted, rejected_drift, rejected_other, error, timeout, skipped",
            ["stage", "outcome"],
            registry=r,
        )
        self.gate_decisions = Counter(
            "mpr_skip_gate_decisions",
            "Skip-gate decisions: decision=skip|refine with the gate's reason",
            ["decision", "reason"],
            registry=r,
        )
        self._pools = _PoolCollector()
        r.register(self._pools)  # type: ignore[arg-type]
        # cached children (label lookups are a lock + dict walk in prometheus_client)
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._in_flight_children: dict[str, Any] = {}
        self._ttfb_children: dict[str, Any] = {}
        self._stage_children: dict[tuple[str, str], Any] = {}
        self._stage_duration_children: dict[str, Any] = {}
        self._gate_children: dict[tuple[bool, str], Any] = {}
        self._refine_children: dict[str, Any] = {}

    # -- sources --------------------------------------------------------------------------
    def watch_pools(self, source: PoolSource) -> None:
        self._pools.sources.append(source)

    # -- hot path -------------------------------------------------------------------------
    def in_flight_for(self, route: str) -> Any:
        child = self._in_flight_children.get(route)
        if child is None:
            child = self._in_flight_children[route] = self.in_flight.labels(route)
        return child

    def observe_request(self, route: str, model: str, status: int, seconds: float) -> None:
        key = (route, model, status)
        pair = self._request_children.get(key)
        if pair is None:
            pair = self._request_children[key] = (
                self.requests.labels(route, model, str(status)),
                self.request_duration.labels(route, model),
            )
        pair[0].inc()
        pair[1].observe(seconds)

    def observe_ttfb(self, model: str, seconds: float) -> None:
        child = self._ttfb_children.get(model)
        if child is None:
            child = self._ttfb_children[model] = self.stream_ttfb.labels(model)
        child.observe(seconds)

    # -- refinement -----------------------------------------------------------------------
    def stage_outcome(self, stage: str, outcome: str) -> None:
        key = (stage, outcome)
        child = self._stage_children.get(key)
        if child is None:
            child = self._stage_children[key] = self.stage_outcomes.labels(stage, outcome)
        child.inc()

    def stage_latency(self, stage: str, seconds: float) -> None:
        child = self._stage_duration_children.get(stage)
        if child is None:
            child = self._stage_duration_children[stage] = self.stage_duration.labels(stage)
        child.observe(seconds)

    def gate_decision(self, refine: bool, reason: str) -> None:
        key = (refine, reason)
        child = self._gate_children.get(key)
        if child is None:
            child = self._gate_children[key] = self.gate_decisions.labels("refine" if refine else "skip", reason)
        child.inc()

    def refinement(self, result: str, seconds: float) -> None:
        child = self._refine_children.get(result)
        if child is None:
            child = self._refine_children[result] = self.refinement_duration.labels(result)
        child.observe(seconds)

    # -- exposition -----------------------------------------------------------------------
    def render(self) -> bytes:
        return generate_latest(self.registry)


def pools_of(target_pools: Mapping[Any, Any], adapter_pools: Mapping[Any, Any]) -> list[Any]:
    return [*target_pools.values(), *adapter_pools.values()]
