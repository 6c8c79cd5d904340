"""Idle memory of ``mpr-gateway serve``: ``--workers 1`` against ``--workers N``, per process and in all.

    .venv/bin/python bench/memory.py [--workers 1,4] [--port-base 19400] [--settle 3] [--requests 20]
                                     [--reload] [--json out.json] [--compare before.json] [--label L]

Starts run.py's fake upstream and run.py's gateway config (three 50 ms adapters, a client key, refinement on, the
skip gate's context check on: the lexicon and the trigram language model are loaded at start), once
per worker count. It waits until every worker listens, sends ``--requests`` refined and skipped
requests (the gate's first lookups, each worker's connection pools), lets the server sit idle for
``--settle`` seconds, then reads every process's ``memory_full_info`` (RSS; PSS: shared pages
split between the processes that map them; USS: pages no other process has). The whole server's
memory is the PSS summed over its processes (supervisor included): the figure that adds up. The
ratio compares that sum at N workers with one worker's. ``--compare`` prints a saved run
(``--json``) next to this one; ``--reload`` measures each server again after a SIGHUP reload
(every worker builds a new runtime and the collector sees what start-up froze).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402
from workers import start_gateway  # noqa: E402 - serve --workers N on all this process's cores

MB = 2**20


def listening(proc: psutil.Process, port: int) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in proc.net_connections("tcp"))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def wait_workers(gw: run.Proc, port: int, workers: int, timeout: float = 120.0) -> list[psutil.Process]:
    """The serving processes, once each listens (its app's start-up ran: lexicon and model loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tree = gw.tree()
        serving = [p for p in tree if listening(p, port)]
        if len(serving) >= workers:
            return serving
        time.sleep(0.2)
    raise RuntimeError(f"{workers} workers not listening on {port} after {timeout:.0f} s:\n{gw.tail()}")


def warm(port: int, n: int) -> None:
    """Refined (typos) and skipped (clean) requests, new connections each: every worker sees some."""
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    for i in range(n):
        payload = run.body("bench-refine", run.TYPOS if i % 2 else run.CLEAN)
        req = urllib.request.Request(url, data=payload, headers={"content-type": "application/json", "authorization": f"Bearer {run.KEY}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()


def measure(gw: run.Proc, serving: list[psutil.Process]) -> list[dict]:
    serving_pids = {p.pid for p in serving}
    rows = []
    for proc in gw.tree():
        try:
            info = proc.memory_full_info()
            cmd = proc.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "taskset" in os.path.basename(cmd[0] if cmd else ""):
            continue
        role = "worker" if proc.pid in serving_pids else "supervisor"
        rows.append({"pid": proc.pid, "role": role, "rss": info.rss / MB, "pss": info.pss / MB, "uss": info.uss / MB})
    rows.sort(key=lambda r: (r["role"] != "supervisor", r["pid"]))
    return rows


def summary(workers: int, rows: list[dict], note: str = "") -> dict:
    return {
        "workers": workers,
        "note": note,
        "processes": rows,
        "pss_total": sum(r["pss"] for r in rows),
        "rss_total": sum(r["rss"] for r in rows),
        "worker_rss_max": max(r["rss"] for r in rows if r["role"] == "worker"),
        "worker_uss_mean": sum(r["uss"] for r in rows if r["role"] == "worker") / workers,
    }


def one_run(conf: Path, port: int, workers: int, requests: int, settle: float, reload: bool) -> list[dict]:
    """The idle server; with ``reload`` also after a SIGHUP (every worker rebuilt its runtime)."""
    gw = start_gateway(conf, port, workers)
    try:
        serving = wait_workers(gw, port, workers)
        warm(port, requests)
        time.sleep(settle)
        runs = [summary(workers, measure(gw, serving))]
        if reload:
            main = next(p for p in gw.tree() if p.pid not in {s.pid for s in serving} and "taskset" not in p.name()) if workers > 1 else serving[0]
            main.send_signal(signal.SIGHUP)
            time.sleep(2.0)
            warm(port, requests)
            time.sleep(settle)
            runs.append(summary(workers, measure(gw, wait_workers(gw, port, workers)), "after SIGHUP"))
    finally:
        gw.stop()
    return runs


def report(runs: list[dict], label: str) -> None:
    print(f"\n### {label}\n")
    print("| workers | process | pid | RSS MB | PSS MB | USS MB |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        label = f"{r['workers']} {r['note']}" if r.get("note") else str(r["workers"])
        for p in r["processes"]:
            print(f"| {label} | {p['role']} | {p['pid']} | {p['rss']:.1f} | {p['pss']:.1f} | {p['uss']:.1f} |")
        print(f"| {label} | **whole server** | | {r['rss_total']:.1f} | **{r['pss_total']:.1f}** | |")
    base = next((r for r in runs if r["workers"] == 1 and not r.get("note")), None)
    if base:
        for r in runs:
            if r["workers"] > 1:
                print(f"\nPSS sum, --workers {r['workers']}{' ' + r['note'] if r.get('note') else ''} / --workers 1: "
                      f"{r['pss_total']:.1f} / {base['pss_total']:.1f} MB = **{r['pss_total'] / base['pss_total']:.2f}x** (target < 2x)")
        print(f"one worker's idle RSS: **{base['worker_rss_max']:.1f} MB** (target <= 120 MB)")


def compare(before: list[dict], after: list[dict]) -> None:
    print("\n### before -> after\n")
    print("| workers | one worker's RSS MB | worker USS MB (mean) | whole-server PSS MB | x one worker's PSS |")
    print("|---|---|---|---|---|")
    by = {(r["workers"], r.get("note", "")): r for r in before}
    base_b = by.get((1, ""))
    base_a = next((r for r in after if r["workers"] == 1 and not r.get("note")), None)
    for r in after:
        b = by.get((r["workers"], r.get("note", "")))
        if b is None:
            continue
        ratio = ""
        if base_b and base_a:
            ratio = f"{b['pss_total'] / base_b['pss_total']:.2f} -> {r['pss_total'] / base_a['pss_total']:.2f}"
        print(f"| {r['workers']} {r.get('note', '')} | {b['worker_rss_max']:.1f} -> {r['worker_rss_max']:.1f} | {b['worker_uss_mean']:.1f} -> "
              f"{r['worker_uss_mean']:.1f} | {b['pss_total']:.1f} -> {r['pss_total']:.1f} | {ratio} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,4", help="comma-separated worker counts (default 1,4)")
    ap.add_argument("--port-base", type=int, default=19400)
    ap.add_argument("--settle", type=float, default=3.0, help="idle seconds before measuring")
    ap.add_argument("--requests", type=int, default=20, help="warm-up requests before the idle wait (0: none)")
    ap.add_argument("--json", help="save the runs here")
    ap.add_argument("--compare", help="a saved run (--json) to print next to this one")
    ap.add_argument("--label", default="this tree")
    ap.add_argument("--reload", action="store_true", help="measure again after a SIGHUP reload")
    args = ap.parse_args()
    for name in run.PORTS:
        run.PORTS[name] += args.port_base
    work = Path(run.tempfile.mkdtemp(prefix="mpr-memory-"))
    up = run.start_upstream()
    port = run.PORTS["gateway"]
    conf = run.gateway_config(work, {"cleaner": 50, "describer": 50, "paraphraser": 50}, "memory", port=port, access_log=False)
    runs = []
    try:
        for workers in (int(w) for w in args.workers.split(",")):
            runs += one_run(conf, port, workers, args.requests, args.settle, args.reload)
            print(f"  workers={workers}: PSS sum {runs[-1]['pss_total']:.1f} MB", file=sys.stderr, flush=True)
    finally:
        up.stop()
        run.shutil.rmtree(work, ignore_errors=True)
    report(runs, args.label)
    if args.compare:
        compare(json.loads(Path(args.compare).read_text())["runs"], runs)
    if args.json:
        Path(args.json).write_text(json.dumps({"label": args.label, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
