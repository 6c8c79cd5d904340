"""``serve --workers 1`` vs ``--workers 2``: pass-through req/s on this machine, as a ratio.

    .venv/bin/python bench/workers.py [--duration 5] [--repeat 3] [--conc 64] [--port-base 19200]

Reuses bench/run.py's fake upstream, gateway config and wrk driver (refinement off: model
``bench-off``, access log off). The gateway may use every core (no pinning); the fake upstream and
wrk stay on core 1 as in run.py, so on a 2-core machine the second worker competes with them and
the ratio's ceiling is below 2. Rounds alternate 1, 2, 1, 2, ...; the best round of each counts.
Before each point it waits for load from outside the bench to drop (run.py's ``--quiet`` logic):
on a shared 2-core machine another tenant's load takes exactly the core a second worker needs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402


def start_gateway(conf: Path, port: int, workers: int) -> run.Proc:
    exe = run.ROOT / ".venv" / "bin" / "mpr-gateway"
    cores = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    argv = [str(exe), "serve", "--config", str(conf), "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    proc = run.Proc(f"gateway-w{workers}", argv, cores)
    run.wait_http(f"http://127.0.0.1:{port}/health", proc)
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--conc", type=int, default=64)
    ap.add_argument("--port-base", type=int, default=19200)
    ap.add_argument("--quiet", type=float, default=10.0, help="wait for other load under this %% before a point")
    ap.add_argument("--quiet-wait", type=float, default=15.0, help="longest wait for quiet before a point (s)")
    ap.add_argument("--wait-budget", type=float, default=3.0, help="minutes of waiting for quiet in all")
    args = ap.parse_args()
    for name in run.PORTS:
        run.PORTS[name] += args.port_base
    bench = run.Bench(argparse.Namespace(quick=False, duration=args.duration, repeat=args.repeat, wait_budget=args.wait_budget,
                                         quiet=args.quiet, quiet_wait=args.quiet_wait, attempts=2))
    up = bench.start(run.start_upstream)
    port = run.PORTS["gateway"]
    conf = run.gateway_config(bench.work, {"cleaner": 50}, "workers", port=port, access_log=False)
    payload = run.body("bench-off", run.CLEAN)
    best: dict[int, tuple[float, str]] = {}
    try:
        for _ in range(args.repeat):
            for workers in (1, 2):
                gw = bench.start(start_gateway, conf, port, workers)
                try:
                    row = bench.quiet(bench.overhead_point, "gateway", f"workers={workers}", gw, port, payload, args.conc)
                finally:
                    bench.stop(gw)
                print(f"  workers={workers} rps={row.rps:8.0f} p50={row.p50:.2f} ms p99={row.p99:.2f} ms "
                      f"cpu={row.cpu_ms:.3f} ms/req {row.notes}", file=sys.stderr, flush=True)
                if row.rps > best.get(workers, (0.0, ""))[0]:
                    best[workers] = (row.rps, f"other load {row.extra['foreign']:.0f}%")
    finally:
        bench.stop(up)
    (one, one_note), (two, two_note) = best[1], best[2]
    print(f"req/s --workers 1: {one:.0f} ({one_note})  --workers 2: {two:.0f} ({two_note})  ratio {two / one:.2f} "
          f"(c={args.conc}, {args.duration:g}s x{args.repeat}, {len(os.sched_getaffinity(0))} CPUs)")
    print(json.dumps({"workers_1_rps": round(one), "workers_2_rps": round(two), "ratio": round(two / one, 2)}))


if __name__ == "__main__":
    main()
