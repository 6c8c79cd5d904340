"""Whole-server ``/metrics`` when several worker processes serve one port (``serve --workers N``).

The project's equivalent of Prometheus' multiprocess mode for its lock-free metrics: each worker
writes a snapshot of its :class:`Metrics` to ``worker-<pid>.json`` in a directory shared by the
server (``MPR_METRICS_DIR``, or a temporary one the supervisor makes) about once a second and a
final one when it exits; whichever worker serves a scrape merges its own live values with every
other worker's latest snapshot. The request path is untouched: snapshots are taken off the event
loop's ticks, never per request.

Merge rules (:func:`merge`):

* counters and histograms: summed over every worker that ever wrote (live and exited), so they
  stay monotonic across a worker's restart;
* ``mpr_requests_in_flight`` and ``mpr_upstream_endpoint_outstanding_requests``: summed over live
  workers (a snapshot is live when not final and younger than ``STALE_S``);
* ``mpr_upstream_endpoint_up``: the serving worker's own view (every worker probes every endpoint);
* ``process_cpu_seconds_total``: summed over every worker; resident/virtual memory and open fds:
  summed over live workers; ``process_start_time_seconds``: the oldest live worker's;
  ``process_max_fds``: the serving worker's;
* ``mpr_server_workers{state="live"|"exited"}``: how many snapshots each rule saw;
* families of other collectors on the registry (e.g. the shared state's): counters summed over
  every worker, anything else the serving worker's own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector

from gateway.telemetry.metrics import Metrics, _Counter, _Histogram

SNAPSHOT_INTERVAL_S = 1.0
STALE_S = 5.0  # a worker that has not written for this long is dead (killed): its gauges are dropped
PREFIX, SUFFIX = "worker-", ".json"

Series = list[tuple[list[str], Any]]


class Snapshot(msgspec.Struct):
    """One worker's metric values at ``time`` (wall clock)."""

    pid: int
    time: float
    final: bool = False
    counters: dict[str, Series] = {}
    histograms: dict[str, Series] = {}
    in_flight: dict[str, float] = {}
    pools_up: Series = []
    pools_outstanding: Series = []
    process: dict[str, float] = {}
    extra_counters: list[tuple[str, dict[str, str], float]] = []  # (sample name, labels, value)


IN_FLIGHT = "mpr_requests_in_flight"
POOL_FAMILIES = ("mpr_upstream_endpoint_up", "mpr_upstream_endpoint_outstanding_requests")


def _known(metrics: Metrics, name: str) -> bool:
    """Whether the merge has its own rule for family ``name`` (else it is another collector's)."""
    own = {c.name for c in _counters(metrics)} | {h.name for h in _histograms(metrics)}
    return name in own or name in POOL_FAMILIES or name == IN_FLIGHT or name.startswith("process_")


def _extra_counters(metrics: Metrics) -> list[tuple[str, dict[str, str], float]]:
    """The ``_total`` samples of counters that other collectors put on the registry."""
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in metrics.registry.collect()
        if family.type == "counter" and not _known(metrics, family.name)
        for sample in family.samples
        if sample.name.endswith("_total")
    ]


def _counters(metrics: Metrics) -> list[_Counter]:
    return [v for v in vars(metrics).values() if isinstance(v, _Counter)]


def _histograms(metrics: Metrics) -> list[_Histogram]:
    return [v for v in vars(metrics).values() if isinstance(v, _Histogram)]


def _process_values(collector: ProcessCollector) -> dict[str, float]:
    return {sample.name: float(sample.value) for family in collector.collect() for sample in family.samples}


def take_snapshot(metrics: Metrics, process: ProcessCollector, *, final: bool = False) -> Snapshot:
    """The current values of ``metrics`` (and this process's resource figures)."""
    metrics.fold()
    up: Series = []
    outstanding: Series = []
    for family in metrics._pools.collect():
        into = up if family.name == "mpr_upstream_endpoint_up" else outstanding
        into.extend((list(s.labels.values()), s.value) for s in family.samples)
    return Snapshot(
        pid=os.getpid(),
        time=time.time(),
        final=final,
        counters={c.name: [(list(k), v) for k, v in c.series.items()] for c in _counters(metrics)},
        histograms={h.name: [(list(k), list(v)) for k, v in h.series.items()] for h in _histograms(metrics)},
        in_flight={route: float(gauge.value) for route, gauge in metrics._in_flight.items()},
        pools_up=up,
        pools_outstanding=outstanding,
        process=_process_values(process),
        extra_counters=_extra_counters(metrics),
    )


def write_snapshot(directory: Path, snapshot: Snapshot) -> None:
    """Atomically replace this worker's file (a reader never sees half a snapshot)."""
    path = directory / f"{PREFIX}{snapshot.pid}{SUFFIX}"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.encode(snapshot))
    os.replace(tmp, path)


def read_snapshots(directory: Path, exclude_pid: int) -> list[Snapshot]:
    """Every other worker's latest snapshot; unreadable files are skipped."""
    snapshots = []
    for path in directory.glob(f"{PREFIX}*{SUFFIX}"):
        if path.name == f"{PREFIX}{exclude_pid}{SUFFIX}":
            continue
        try:
            snapshots.append(msgspec.json.decode(path.read_bytes(), type=Snapshot))
        except (OSError, msgspec.DecodeError):
            continue
    return snapshots


def clear_snapshots(directory: Path) -> None:
    """Remove a previous server's snapshots (the supervisor does this before starting workers)."""
    for path in directory.glob(f"{PREFIX}*"):
        path.unlink(missing_ok=True)


class Merged(msgspec.Struct):
    counters: dict[str, dict[tuple[str, ...], float]]
    histograms: dict[str, dict[tuple[str, ...], list[float]]]
    in_flight: dict[str, float]
    pools_up: dict[tuple[str, ...], float]
    pools_outstanding: dict[tuple[str, ...], float]
    process: dict[str, float]
    live: int
    exited: int
    extra_counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}


def _sum_into(target: dict[tuple[str, ...], Any], series: Series) -> None:
    for labels, value in series:
        key = tuple(labels)
        if isinstance(value, list):
            current = target.get(key)
            target[key] = list(value) if current is None else [a + b for a, b in zip(current, value)]
        else:
            target[key] = target.get(key, 0.0) + value


def merge(own: Snapshot, others: Sequence[Snapshot], now: float, stale_s: float = STALE_S) -> Merged:
    """The whole server's values from the serving worker's ``own`` snapshot and the ``others``'
    (see the module docstring for the rules)."""
    live = [own, *(s for s in others if not s.final and now - s.time <= stale_s)]
    every = [own, *others]
    counters: dict[str, dict[tuple[str, ...], float]] = {}
    histograms: dict[str, dict[tuple[str, ...], list[float]]] = {}
    for snap in every:
        for name, series in snap.counters.items():
            _sum_into(counters.setdefault(name, {}), series)
        for name, series in snap.histograms.items():
            _sum_into(histograms.setdefault(name, {}), series)
    in_flight: dict[str, float] = {}
    outstanding: dict[tuple[str, ...], float] = {}
    for snap in live:
        for route, value in snap.in_flight.items():
            in_flight[route] = in_flight.get(route, 0.0) + value
        _sum_into(outstanding, snap.pools_outstanding)
    process: dict[str, float] = {}
    if "process_cpu_seconds_total" in own.process:
        process["process_cpu_seconds_total"] = sum(s.process.get("process_cpu_seconds_total", 0.0) for s in every)
    for key in ("process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds"):
        if key in own.process:
            process[key] = sum(s.process.get(key, 0.0) for s in live)
    if "process_start_time_seconds" in own.process:
        process["process_start_time_seconds"] = min(s.process.get("process_start_time_seconds", float("inf")) for s in live)
    if "process_max_fds" in own.process:
        process["process_max_fds"] = own.process["process_max_fds"]
    extra: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for snap in every:
        for name, labels, value in snap.extra_counters:
            key = (name, tuple(sorted(labels.items())))
            extra[key] = extra.get(key, 0.0) + value
    return Merged(
        extra_counters=extra,
        counters=counters,
        histograms=histograms,
        in_flight=in_flight,
        pools_up={tuple(labels): value for labels, value in own.pools_up},
        pools_outstanding=outstanding,
        process=process,
        live=len(live),
        exited=len(every) - len(live),
    )


_PROCESS_HELP = {
    "process_cpu_seconds_total": "Total user and system CPU time spent in seconds, every worker of the server",
    "process_resident_memory_bytes": "Resident memory size in bytes, live workers summed",
    "process_virtual_memory_bytes": "Virtual memory size in bytes, live workers summed",
    "process_open_fds": "Number of open file descriptors, live workers summed",
    "process_start_time_seconds": "Start time of the oldest live worker since unix epoch in seconds",
    "process_max_fds": "Maximum number of open file descriptors (the serving worker's limit)",
}


class MergedCollector:
    """Yields the whole server's metric families: this worker's live values merged with the other
    workers' snapshots in ``directory``."""

    def __init__(self, metrics: Metrics, directory: Path) -> None:
        self.metrics, self.directory = metrics, directory
        self.process = ProcessCollector(registry=None)

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        own = take_snapshot(self.metrics, self.process)
        merged = merge(own, read_snapshots(self.directory, own.pid), time.time())
        for family in self.metrics._pools.collect():
            gauge = GaugeMetricFamily(family.name, family.documentation, labels=["kind", "pool", "endpoint"])
            values = merged.pools_up if family.name == "mpr_upstream_endpoint_up" else merged.pools_outstanding
            for labels, value in values.items():
                gauge.add_metric(list(labels), value)
            yield gauge
        for counter in _counters(self.metrics):
            total = _Counter(counter.name, counter.help, counter.labelnames)
            total.series = merged.counters.get(counter.name, {})
            yield total.family()
        for histogram in _histograms(self.metrics):
            total_h = _Histogram(histogram.name, histogram.help, histogram.labelnames, histogram.bounds)
            total_h.series = merged.histograms.get(histogram.name, {})
            yield total_h.family()
        in_flight = GaugeMetricFamily("mpr_requests_in_flight", "Requests being served now, by route template (all workers)", labels=["route"])
        for route, value in merged.in_flight.items():
            in_flight.add_metric([route], value)
        yield in_flight
        for name, value in merged.process.items():
            if name.endswith("_total"):
                yield CounterMetricFamily(name[: -len("_total")], _PROCESS_HELP[name], value=value)
            else:
                yield GaugeMetricFamily(name, _PROCESS_HELP[name], value=value)
        yield from self._other_collectors(merged)
        workers = GaugeMetricFamily("mpr_server_workers", "Worker processes whose metrics this scrape merged, by state", labels=["state"])
        workers.add_metric(["live"], merged.live)
        workers.add_metric(["exited"], merged.exited)
        yield workers


    def _other_collectors(self, merged: Merged) -> Iterator[Any]:
        for family in self.metrics.registry.collect():
            if _known(self.metrics, family.name):
                continue
            if family.type != "counter":
                yield family  # a gauge or info: this worker's own view
                continue
            total = Metric(family.name, family.documentation, "counter")
            for (name, labels), value in merged.extra_counters.items():
                if name == family.name + "_total":
                    total.add_sample(name, dict(labels), value)
            yield total


def merged_registry(metrics: Metrics, directory: Path) -> CollectorRegistry:
    """A registry exposing the whole server (hand it to :meth:`Metrics.expose_through`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MergedCollector(metrics, directory))  # type: ignore[arg-type]
    return registry
