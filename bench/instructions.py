"""Instructions per request under valgrind's callgrind: a figure the machine's noise cannot move.

    .venv/bin/python bench/instructions.py [--requests 1000] [--concurrency 8]

CPU time per request on a shared VM moves ±10% between passes (docs/benchmarks.md), which is the
size of the differences issue 24 judges. The number of instructions a server executes per request
does not move: each system (the bare Litestar + aiohttp pass-through, the gateway with refinement
off, the gateway's skip gate on a clean prompt it has seen) is started under callgrind with
instrumentation off, warmed up with ``--warmup`` requests, counted over ``--requests`` requests at
``--concurrency``, and the count divided by the requests. The figures are ratios against the bare
pass-through counted in the same run. Instructions are not cycles (cache misses, branch misses and
system calls are not in them): this complements ``bench/run.py``, it does not replace it.

Needs ``valgrind`` (``apt-get install valgrind``); about 30 s per system. Loopback only; every
process started here is stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (the fake upstream, the bench config, the ports)

SYSTEMS = {  # name → (model, what it measures)
    "bare": ("bench-model", "bare Litestar + aiohttp pass-through"),
    "off": ("bench-off", "gateway, refinement off"),
    "skip": ("bench-refine", "gateway, skip gate (a clean prompt seen before)"),
}


async def drive(url: str, model: str, n: int, concurrency: int) -> dict[int, int]:
    """Exactly ``n`` chat completions at ``concurrency``; status → count."""
    payload = bench.body(model, bench.CLEAN)
    headers = {"content-type": "application/json", "authorization": f"Bearer {bench.KEY}"}
    counts: dict[int, int] = {}
    left = n
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(url, data=payload, headers=headers) as response:
                    await response.read()
                    counts[response.status] = counts.get(response.status, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts


def summary(path: Path) -> int:
    """The ``summary:`` line of a callgrind dump (instructions executed)."""
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary line in {path}")


def count(name: str, argv: list[str], port: int, model: str, args: argparse.Namespace, workdir: Path, **popen) -> int:
    """Instructions per request of the server ``argv`` (listening on ``port``)."""
    out = workdir / f"{name}.cg"
    log = (workdir / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", *argv],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **popen,
    )
    try:
        bench.wait_http(f"http://127.0.0.1:{port}/health", _Waitable(proc, workdir / f"{name}.log"), timeout=300)  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        asyncio.run(drive(url, model, args.warmup, args.concurrency))
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
        counts = asyncio.run(drive(url, model, args.requests, args.concurrency))
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
        if set(counts) != {200}:
            raise RuntimeError(f"{name}: statuses {counts}")
        dump = Path(f"{out}.1")
        for _ in range(50):
            if dump.exists() and "summary:" in dump.read_text(errors="replace"):
                break
            time.sleep(0.2)
        return summary(dump) // args.requests
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class _Waitable:
    """What :func:`bench.wait_http` needs of a process: ``p.poll()``, ``stop()``, ``tail()``, ``name``."""

    def __init__(self, proc: subprocess.Popen, log: Path) -> None:
        self.p, self.log, self.name = proc, log, Path(proc.args[-1]).name

    def stop(self) -> None:
        self.p.kill()

    def tail(self, n: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--port-base", type=int, default=19300)
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    for name in bench.PORTS:
        bench.PORTS[name] += args.port_base
    workdir = Path(tempfile.mkdtemp(prefix="mpr-instructions-"))
    upstream = bench.start_upstream()
    figures: dict[str, int] = {}
    try:
        conf = bench.gateway_config(workdir, {"cleaner": 0, "describer": 0, "paraphraser": 0}, "instructions")
        gateway = [str(bench.ROOT / ".venv" / "bin" / "mpr-gateway"), "serve", "--config", str(conf),
                   "--host", "127.0.0.1", "--port", str(bench.PORTS["gateway"]), "--workers", "1"]
        bare = [str(bench.VENV_PY), "-m", "uvicorn", "bare_passthrough:app", "--host", "127.0.0.1",
                "--port", str(bench.PORTS["bare"]), "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--log-level", "warning"]
        env = {**os.environ, "UPSTREAM": bench.upstream_url()}
        figures["bare"] = count("bare", bare, bench.PORTS["bare"], SYSTEMS["bare"][0], args, workdir, cwd=bench.BENCH, env=env)
        for name in ("off", "skip"):
            figures[name] = count(name, gateway, bench.PORTS["gateway"], SYSTEMS[name][0], args, workdir)
    finally:
        upstream.stop()
    base = figures["bare"]
    print(f"Instructions per request (callgrind; {args.requests} requests at c={args.concurrency} after {args.warmup} warm-up)\n")
    print("| system | instructions / request | × bare |")
    print("|---|---|---|")
    for name, value in figures.items():
        print(f"| {SYSTEMS[name][1]} | {value:,} | {value / base:.2f} |")
    print(f"\nskip gate vs refinement off (throughput terms, off ÷ skip): {figures['off'] / figures['skip']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
