"""Profile the gateway's hot path under load with py-spy; print where its CPU goes.

    .venv/bin/python bench/profile_gateway.py [--scenario off|skip|refine|stream] [--seconds 10]

Same pinning and fake upstream as ``bench/run.py`` (gateway on core 0; upstream + driver on core 1).
py-spy is installed on first use into ``bench/.venv-tools``. Prints the top functions by own
samples and by inclusive samples, plus a per-package breakdown, and keeps the raw collapsed
stacks (``--out``, flamegraph.pl / speedscope input).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # noqa: E402
import run as R  # noqa: E402

TOOLS = R.BENCH / ".venv-tools"

SCENARIOS = {  # model, prompt, streaming
    "off": ("bench-off", R.CLEAN, False),
    "skip": ("bench-refine", R.CLEAN, False),
    "refine": ("bench-refine", R.TYPOS, False),
    "stream": ("bench-off", R.CLEAN, True),
}

GROUPS = [  # first match wins: (label, regex on the frame's file)
    ("gateway access log + logging", r"gateway/logs\.py|logging/__init__\.py|json/"),
    ("gateway telemetry (middleware, metrics)", r"gateway/telemetry/|prometheus_client|opentelemetry"),
    ("gateway refinement (gate, merge, stages)", r"gateway/refinement/"),
    ("gateway (other)", r"gateway/"),
    ("litestar", r"litestar/"),
    ("uvicorn", r"uvicorn/"),
    ("aiohttp client", r"aiohttp/|multidict|yarl"),
    ("asyncio / uvloop", r"asyncio/|uvloop"),
]


def ensure_pyspy() -> Path:
    exe = TOOLS / "bin" / "py-spy"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS)], check=True)
        subprocess.run([str(TOOLS / "bin" / "pip"), "install", "-q", "py-spy"], check=True)
    return exe


def clean(frame: str) -> str:
    frame = re.sub(r":\d+\)$", ")", frame)
    return re.sub(r"\S*/site-packages/|\S*/lib/python3\.\d+/|" + re.escape(str(R.ROOT)) + "/", "", frame)


def summarise(raw: Path, top: int) -> str:
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    groups: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, n_s = line.rsplit(" ", 1)
        n = int(n_s)
        total += n
        frames = [clean(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
        # a sample belongs to the innermost frame that matches a group (logging inside gateway -> logging)
        label = "other (interpreter, event loop idle)"
        for f in reversed(frames):
            hit = next((g for g, rx in GROUPS if re.search(rx, f)), None)
            if hit:
                label = hit
                break
        groups[label] += n
    out = [f"samples: {total}", "", "| share | by package (innermost matching frame) |", "|---|---|"]
    out += [f"| {100 * n / total:.1f}% | {g} |" for g, n in groups.most_common()]
    out += ["", "| own % | function |", "|---|---|"]
    out += [f"| {100 * n / total:.1f}% | `{f}` |" for f, n in own.most_common(top)]
    out += ["", "| inclusive % | function |", "|---|---|"]
    out += [f"| {100 * n / total:.1f}% | `{f}` |" for f, n in incl.most_common(top * 2)
            if not re.search(r"runners\.py|cli\.py|uvicorn/server\.py|_compat\.py|<module>", f)]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), default="off")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--access-log", choices=["on", "off"], default="on")
    ap.add_argument("--port-base", type=int, default=19200)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "mpr-gateway-profile.txt")
    args = ap.parse_args()
    for name in R.PORTS:
        R.PORTS[name] += args.port_base
    pyspy = ensure_pyspy()
    work = Path(tempfile.mkdtemp(prefix="mpr-prof-"))
    procs: list[R.Proc] = []
    try:
        procs.append(R.start_upstream())
        conf = R.gateway_config(work, {"cleaner": 50, "describer": 50, "paraphraser": 50}, "prof",
                                access_log=args.access_log == "on")
        gw = R.start_gateway(conf)
        procs.append(gw)
        model, prompt, stream = SCENARIOS[args.scenario]
        payload = R.body(model, prompt, stream)
        url = f"http://127.0.0.1:{R.PORTS['gateway']}/v1/chat/completions"
        import os

        os.sched_setaffinity(0, {int(R.DRIVER_CORE)})
        result: dict = {}

        def drive() -> None:
            if stream:
                result.update(loadgen.run(loadgen.stream_run(url, payload, {}, args.concurrency,
                                                             args.seconds + 2, 10**6, 0.5)))
            else:
                b = R.Bench.__new__(R.Bench)
                b.work = work
                result.update(R.Bench.wrk(b, url, payload, args.concurrency, args.seconds + 3))

        t = threading.Thread(target=drive)
        t.start()
        time.sleep(1.0)
        subprocess.run([str(pyspy), "record", "-p", str(gw.pid), "-r", str(args.rate), "-d", str(int(args.seconds)),
                        "--format", "raw", "-o", str(args.out), "--nonblocking"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t.join()
        rps = result.get("rps") or result.get("requests", 0) / max(1e-9, result.get("duration_us", 1) / 1e6)
        print(f"## gateway profile: scenario {args.scenario}, c={args.concurrency}, access log {args.access_log}, "
              f"{rps:,.0f} req/s under py-spy ({args.rate} Hz)\n")
        print(summarise(args.out, args.top))
        print(f"\nraw collapsed stacks: {args.out}")
    finally:
        for p in reversed(procs):
            p.stop()


if __name__ == "__main__":
    main()
