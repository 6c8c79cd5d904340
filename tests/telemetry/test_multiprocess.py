"""Whole-server ``/metrics`` from per-worker snapshots (:mod:`gateway.telemetry.multiprocess`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector

from gateway.config.models import Role
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.multiprocess import (
    Snapshot,
    clear_snapshots,
    merge,
    merged_registry,
    read_snapshots,
    take_snapshot,
    write_snapshot,
)


def _worker(requests: int, in_flight: int = 0) -> Metrics:
    metrics = Metrics(process=False)
    for _ in range(requests):
        metrics.observe_request("/v1/chat/completions", "m", 200, 0.003)
    metrics.stage_outcome("cleaner", "accepted")
    metrics.in_flight_for("/v1/chat/completions").value = in_flight
    return metrics


class _Extra:
    """Another collector on the registry (as the shared state's)."""

    def __init__(self, errors: float, up: float) -> None:
        self.errors, self.up = errors, up

    def collect(self) -> Iterator[Any]:
        counter = CounterMetricFamily("mpr_test_errors", "errors", labels=["op"])
        counter.add_metric(["take"], self.errors)
        yield counter
        yield GaugeMetricFamily("mpr_test_up", "up", value=self.up)


def _value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    assert match, sample
    return float(match.group(1))


def _snap(metrics: Metrics, pid: int, when: float, final: bool = False) -> Snapshot:
    snap = take_snapshot(metrics, ProcessCollector(registry=None), final=final)
    snap.pid, snap.time = pid, when
    return snap


def test_counters_and_histograms_sum_over_every_worker_gauges_over_live_ones() -> None:
    own = _snap(_worker(3, in_flight=1), 1, 100.0)
    live = _snap(_worker(5, in_flight=2), 2, 99.5)
    exited = _snap(_worker(7, in_flight=0), 3, 50.0, final=True)
    killed = _snap(_worker(11, in_flight=4), 4, 90.0)  # stopped writing 10 s ago
    merged = merge(own, [live, exited, killed], now=100.0, stale_s=5.0)
    key = ("/v1/chat/completions", "m", "200")
    assert merged.counters["mpr_requests"][key] == 3 + 5 + 7 + 11
    assert merged.counters["mpr_stage_outcomes"][("cleaner", "accepted")] == 4
    buckets = merged.histograms["mpr_request_duration_seconds"][("/v1/chat/completions", "m")]
    assert sum(buckets[:-1]) == 26 and abs(buckets[-1] - 26 * 0.003) < 1e-9
    assert merged.in_flight == {"/v1/chat/completions": 3.0}  # own + live; not the killed one's 4
    assert (merged.live, merged.exited) == (2, 2)
    assert merged.process["process_cpu_seconds_total"] >= own.process["process_cpu_seconds_total"]
    assert merged.process["process_resident_memory_bytes"] == own.process["process_resident_memory_bytes"] + live.process["process_resident_memory_bytes"]


def test_snapshots_round_trip_through_the_directory(tmp_path: Path) -> None:
    snap = _snap(_worker(2), 41, 10.0)
    write_snapshot(tmp_path, snap)
    write_snapshot(tmp_path, _snap(_worker(1), 42, 10.0))
    (tmp_path / "worker-43.json").write_text("{not json")  # skipped
    others = read_snapshots(tmp_path, exclude_pid=42)
    assert [s.pid for s in others] == [41]
    assert others[0].counters == snap.counters
    assert not list(tmp_path.glob("*.tmp"))  # written atomically
    clear_snapshots(tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_worker_renders_the_whole_server(tmp_path: Path) -> None:
    import time

    other = _worker(4, in_flight=2)
    other.registry.register(_Extra(5, up=0))  # type: ignore[arg-type]
    write_snapshot(tmp_path, _snap(other, 999999, time.time()))  # another worker
    mine = _worker(3, in_flight=1)
    mine.registry.register(_Extra(2, up=1))  # type: ignore[arg-type]
    alone = mine.render().decode()
    mine.expose_through(merged_registry(mine, tmp_path))
    text = mine.render().decode()
    assert _value(text, 'mpr_requests_total{model="m",route="/v1/chat/completions",status="200"}') == 7
    assert _value(text, 'mpr_request_duration_seconds_count{model="m",route="/v1/chat/completions"}') == 7
    assert _value(text, 'mpr_requests_in_flight{route="/v1/chat/completions"}') == 3
    assert _value(text, 'mpr_server_workers{state="live"}') == 2
    assert "process_cpu_seconds_total" in text
    assert _value(text, 'mpr_test_errors_total{op="take"}') == 7  # another collector's counter: summed
    assert _value(text, "mpr_test_up") == 1  # its gauge: the serving worker's own
    types = set(re.findall(r"^# TYPE .*$", alone, re.M))
    assert types <= set(re.findall(r"^# TYPE .*$", text, re.M))  # the same families, same types


def test_skips_tallied_between_scrapes_reach_the_counters_and_every_snapshot() -> None:
    """``Metrics.unstaged`` tallies a skip and folds it into the counters when they are read:
    a scrape, a worker's snapshot, or the tally table filling up with new stage lists."""
    metrics = Metrics(process=False)
    default = (Role.CLEANER, Role.DESCRIBER)  # the refiner's default stages: one tuple
    for _ in range(3):
        metrics.unstaged((False, "clean"), default, True, 0.0001)
    assert metrics.stage_outcomes.series.get(("cleaner", "skipped")) is None  # tallied, not yet folded
    text = metrics.render().decode()
    assert _value(text, 'mpr_skip_gate_decisions_total{decision="skip",reason="clean"}') == 3
    assert _value(text, 'mpr_stage_outcomes_total{outcome="skipped",stage="describer"}') == 3
    assert _value(text, 'mpr_refinement_duration_seconds_count{result="skipped"}') == 3
    metrics.unstaged((False, "clean"), default, True, 0.0001)
    snap = take_snapshot(metrics, ProcessCollector(registry=None))
    assert dict((tuple(k), v) for k, v in snap.counters["mpr_stage_outcomes"])[("cleaner", "skipped")] == 4
    for _ in range(70):  # requested stage lists: a new sequence each time, the table is cleared at 64
        metrics.unstaged(None, [Role.CLEANER], False, 0.0001)
    metrics.fold()
    assert metrics.stage_outcomes.series[("cleaner", "error")] == 70
    assert metrics.stage_outcomes.series[("cleaner", "skipped")] == 4
    assert metrics.gate_decisions.series[("skip", "clean")] == 4
