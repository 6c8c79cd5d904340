"""``mpr-gateway status``: ``GET /admin/status`` of a running gateway, as a fleet table.

A ``rich`` table when ``rich`` is installed and stdout is a terminal, plain aligned text when
piped, the JSON itself with ``--json``. Exit 0 with an answer; 1 when the gateway is unreachable
or answers an error; 2 when it refuses the admin key (or has none configured).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from gateway.console.admin_api import AdminApiError, add_connection_arguments, fetch_admin

COLUMNS = ("KIND", "NAME", "NODE", "TIER", "STATE", "IN-FLIGHT", "P50 MS", "P99 MS", "URL", "LAST ERROR")
RESULTS = ("applied", "rejected", "skipped", "fallback", "failed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_arguments(parser)


def fetch_status(url: str, key: str | None, timeout_s: float = 5.0) -> dict[str, Any]:
    """``GET {url}/admin/status`` with the admin key; :class:`AdminApiError` when there is no answer."""
    return fetch_admin(url, "/admin/status", key, "mpr.status", timeout_s=timeout_s)


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _duration(seconds: float) -> str:
    s = int(seconds)
    days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {s % 60:02d}s" if minutes else f"{s}s"


def _state(endpoint: Mapping[str, Any]) -> str:
    if endpoint.get("up"):
        return "up"
    return "cooling" if endpoint.get("cooling_down") else "down"


def fleet_rows(status: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """One row per endpoint (targets, then stages), sorted by node and tier within each kind."""
    rows: list[tuple[str, ...]] = []

    def row(kind: str, name: str, e: Mapping[str, Any]) -> tuple[str, ...]:
        latency = e.get("latency_ms") or {}
        return (
            kind, name, str(e.get("node", "?")), e.get("tier") or "-", _state(e), str(e.get("in_flight", 0)),
            _ms(latency.get("p50")), _ms(latency.get("p99")), str(e.get("url", "?")), e.get("last_error") or "-",
        )

    for target in status.get("targets", []):
        rows.extend(row("target", target["name"], e) for e in target.get("endpoints", []))
    for stage in status.get("stages", []):
        if stage.get("kind") == "builtin":
            rows.append(("stage", stage["role"], "-", "-", "up", "-", "-", "-", "built-in", "-"))
        rows.extend(row("stage", stage["role"], e) for e in stage.get("endpoints", []))
    return sorted(rows, key=lambda r: (r[0] != "target", r[2], r[3], r[1]))


def _rate(counts: Mapping[str, Any]) -> str:
    total = sum(int(counts.get(k, 0)) for k in ("accepted", "rejected", "failed"))
    rate = counts.get("acceptance_rate")
    return "-" if rate is None else f"{rate * 100:.0f}% of {total}"


def stage_rows(status: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """One row per stage: acceptance over the last five minutes and since start, rejections, failures."""
    rows = []
    for stage in status.get("stages", []):
        acceptance = stage.get("acceptance") or {}
        start, window = acceptance.get("since_start") or {}, acceptance.get("window") or {}
        rows.append((stage["role"], stage.get("kind", "?"), _rate(window), _rate(start), str(start.get("rejected", 0)), str(start.get("failed", 0))))
    return rows


def headline(status: Mapping[str, Any]) -> str:
    workers = status.get("workers", 1)
    return (
        f"mpr-gateway {status.get('version', '?')} · pid {status.get('pid', '?')} of {workers} worker{'s' if workers != 1 else ''}"
        f" · up {_duration(float(status.get('uptime_s', 0)))} · config {status.get('config', {}).get('hash', '?')}"
        + (" · DRAINING" if status.get("draining") else "")
        + (f" · {retiring} old config(s) finishing requests" if (retiring := (status.get("runtimes") or {}).get("retiring")) else "")
    )


def summary_lines(status: Mapping[str, Any]) -> list[str]:
    """Refinement outcome counts, cache, rate limit and shared state, one line each."""
    refinement = status.get("refinement") or {}

    def counts(block: Mapping[str, Any]) -> str:
        results = block.get("results") or {}
        return f"{block.get('total', 0)} ({', '.join(f'{r} {results.get(r, 0)}' for r in RESULTS)})"

    cache = status.get("cache") or {}
    limit = status.get("rate_limit") or {}
    state = status.get("state") or {}
    hit_rate = cache.get("hit_rate")
    return [
        f"refinements  last 5 min {counts(refinement.get('window') or {})}; since start {counts(refinement.get('since_start') or {})}",
        "cache        "
        + (f"hit rate {'-' if hit_rate is None else f'{hit_rate * 100:.0f}%'} (hits {cache.get('hits', 0)}, misses {cache.get('misses', 0)})" if cache.get("enabled") else "off"),
        "rate limit   " + (f"{limit.get('requests_per_s')}/s, answered 429: {limit.get('answered_429', 0)}" if limit.get("enabled") else "off"),
        f"state        {state.get('kind', '?')}" + ("" if state.get("reachable", True) else " (unreachable: failing open)"),
    ]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart (the last one not padded)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip() for line in (header, *rows)
    ]


def render_plain(status: Mapping[str, Any]) -> str:
    """The whole report as plain text (piped output)."""
    lines = [headline(status), ""]
    lines += table(COLUMNS, fleet_rows(status))
    stages = stage_rows(status)
    if stages:
        lines += ["", *table(("STAGE", "KIND", "ACCEPTED 5 MIN", "ACCEPTED SINCE START", "REJECTED", "FAILED"), stages)]
    lines += ["", *summary_lines(status)]
    return "\n".join(lines) + "\n"


def render_rich(status: Mapping[str, Any], out: TextIO, width: int | None = None) -> None:
    """The report with ``rich`` (a terminal; ``width``: its own unless given): coloured states."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=width)
    console.print(f"[bold]{headline(status)}[/bold]")
    fleet = Table(show_edge=False, header_style="bold")
    for column in COLUMNS:
        fleet.add_column(column, justify="right" if column in ("IN-FLIGHT", "P50 MS", "P99 MS") else "left", overflow="fold")
    colours = {"up": "green", "down": "red", "cooling": "yellow"}
    for row in fleet_rows(status):
        cells = list(row)
        cells[4] = f"[{colours.get(row[4], 'white')}]{row[4]}[/]"
        fleet.add_row(*cells)
    console.print(fleet)
    stages = Table(show_edge=False, header_style="bold")
    for column in ("STAGE", "KIND", "ACCEPTED 5 MIN", "ACCEPTED SINCE START", "REJECTED", "FAILED"):
        stages.add_column(column)
    for row in stage_rows(status):
        stages.add_row(*row)
    if stages.row_count:
        console.print(stages)
    for line in summary_lines(status):
        console.print(line, highlight=False)


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    key = args.key or os.environ.get("MPR_ADMIN_KEY") or None
    try:
        status = fetch_status(args.url, key, args.timeout)
    except AdminApiError as exc:
        print(f"mpr-gateway status: {exc}", file=err)
        return exc.exit_code
    if args.json:
        out.write(json.dumps(status, indent=2) + "\n")
    elif out.isatty() and _rich_available():
        render_rich(status, out)
    else:
        out.write(render_plain(status))
    return 0
