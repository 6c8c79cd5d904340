"""One command for every benchmark figure: ``python bench/run.py [--quick]``.

Starts the fake upstream, each system under test (the MPR gateway, a bare Litestar + aiohttp
pass-through, nginx, LiteLLM proxy), drives them on loopback with wrk (non-streaming
throughput/latency) and ``bench/loadgen.py`` (streaming TTFB, refinement headers, 1,000 open
streams), then prints one markdown table and the issue's targets against what this run got.

Pinning (2-core machine): every system under test runs on core 0 (``taskset -c 0``); the fake
upstream, wrk, and this harness (which is the Python driver) on core 1. All load is bounded by
time and request count and targets 127.0.0.1 only. Every process started here is stopped here.

Run it with the project venv: ``.venv/bin/python bench/run.py``. LiteLLM is installed on first use
into ``bench/.venv-litellm``; nginx comes from apt (``apt-get install nginx-light``) and wrk too
(``apt-get install wrk``); the harness offers to skip what is missing (``--skip``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_PY = Path(sys.executable)
LITELLM_VENV = BENCH / ".venv-litellm"
KEY = "sk-bench-local-7f3c2a91"
SUT_CORE, DRIVER_CORE = "0", "1"
PRIO: list[str] = []  # ["nice", "-n", "-N"] with --nice N: every bench process outranks other tenants
PORTS = {"upstream": 0, "bare": 1, "litellm": 2, "nginx": 3, "gateway": 4, "gateway-nolog": 5}  # offsets from --port-base
CLEAN = "Explain how a hash table handles collisions in simple terms."
CLEAN_VARIED = "Explain how a hash table handles collisions in simple terms, for case {n}."  # wrk: a new prompt each request
TYPOS = "explian how a hsah tabel handels colisions in simpel terms"
HOLD_MODEL = "bench-hold30"
NO_CACHE = {"x-mpr-cache": "off"}  # refinement points measure the stages, not the refinement cache
STAGGER = {"cleaner": 20, "describer": 40, "paraphraser": 80}  # ms, for the concurrency section


# ----------------------------------------------------------------------------- processes


class Proc:
    """A child process we started (its own session, so we stop exactly what we started)."""

    def __init__(self, name: str, argv: list[str], core: str, env: dict | None = None, cwd: Path | None = None):
        self.name = name
        self.log = Path(tempfile.gettempdir()) / f"mpr-bench-{name}.log"
        self.p = subprocess.Popen(
            [*PRIO, "taskset", "-c", core, *argv], stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.p.pid

    def tree(self) -> list[psutil.Process]:
        try:
            me = psutil.Process(self.pid)
            return [me, *me.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_s(self) -> float:
        """utime+stime of the process tree, from /proc/PID/stat (children included while alive)."""
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for proc in self.tree():
            try:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError):
                pass
        return total

    def rss_mb(self) -> float:
        total = 0
        for proc in self.tree():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total / 2**20

    def stop(self) -> None:
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)  # the group is the session this Popen created
            except ProcessLookupError:
                pass
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(5)

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def wait_http(url: str, proc: Proc, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.p.poll() is not None:
            proc.stop()
            raise RuntimeError(f"{proc.name} exited ({proc.p.returncode}):\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except urllib.error.HTTPError:
            return  # it answered: up
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.3)
    proc.stop()
    raise RuntimeError(f"{proc.name} not ready at {url} after {timeout}s:\n{proc.tail()}")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def core_times() -> dict[str, tuple[int, int]]:
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if re.match(r"cpu\d", line):
            name, *vals = line.split()
            v = list(map(int, vals))
            idle = v[3] + v[4]
            out[name[3:]] = (sum(v[:8]), idle)
    return out


def busy(before: dict, after: dict, core: str) -> float:
    tot = after[core][0] - before[core][0]
    idle = after[core][1] - before[core][1]
    return 100.0 * (tot - idle) / tot if tot else float("nan")


# ----------------------------------------------------------------------------- systems


def body(model: str, prompt: str, stream: bool = False) -> bytes:
    doc: dict = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 64}
    if stream:
        doc["stream"] = True
    return json.dumps(doc).encode()


def responses_body(model: str, prompt: str) -> bytes:
    return json.dumps({"model": model, "input": prompt, "max_output_tokens": 64}).encode()


def start_upstream() -> Proc:
    p = Proc("upstream", [str(VENV_PY), str(BENCH / "fake_upstream.py"), "--port", str(PORTS["upstream"])], DRIVER_CORE)
    wait_http(f"http://127.0.0.1:{PORTS['upstream']}/health", p)
    return p


def upstream_url() -> str:
    return f"http://127.0.0.1:{PORTS['upstream']}/v1"


def start_bare() -> Proc:
    p = Proc("bare", [str(VENV_PY), "-m", "uvicorn", "bare_passthrough:app", "--host", "127.0.0.1",
                      "--port", str(PORTS["bare"]), "--loop", "uvloop", "--http", "httptools",
                      "--no-access-log", "--log-level", "warning"],
             SUT_CORE, env={"UPSTREAM": upstream_url()}, cwd=BENCH)
    wait_http(f"http://127.0.0.1:{PORTS['bare']}/schema", p)  # any answer (404) means up
    return p


def start_nginx(workdir: Path) -> Proc:
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
daemon off; master_process off; worker_processes 1; pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {workdir}/cb; proxy_temp_path {workdir}/pt; fastcgi_temp_path {workdir}/ft;
  uwsgi_temp_path {workdir}/ut; scgi_temp_path {workdir}/st;
  upstream up {{ server 127.0.0.1:{PORTS['upstream']}; keepalive 512; }}
  server {{
    listen 127.0.0.1:{PORTS['nginx']};
    location / {{
      proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_buffering off; proxy_request_buffering off; proxy_read_timeout 120s;
    }}
  }}
}}
""")
    p = Proc("nginx", [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p", str(workdir)], SUT_CORE)
    wait_http(f"http://127.0.0.1:{PORTS['nginx']}/health", p)
    return p


def ensure_litellm() -> Path:
    exe = LITELLM_VENV / "bin" / "litellm"
    if not exe.exists():
        print("installing LiteLLM proxy into bench/.venv-litellm (one time) ...", file=sys.stderr, flush=True)
        base = shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    return exe


def litellm_version() -> str:
    out = subprocess.run([str(LITELLM_VENV / "bin" / "python"), "-c",
                          "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def start_litellm(workdir: Path) -> Proc:
    exe = ensure_litellm()
    conf = workdir / "litellm.yaml"
    entries = "".join(
        f"""  - model_name: {m}
    litellm_params: {{model: openai/{m}, api_base: "{upstream_url()}", api_key: sk-upstream}}
""" for m in ("bench-model", HOLD_MODEL))
    conf.write_text("model_list:\n" + entries + "litellm_settings: {telemetry: false}\n")
    env = {"LITELLM_MASTER_KEY": KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
           "LITELLM_TELEMETRY": "False"}
    p = Proc("litellm", [str(exe), "--config", str(conf), "--host", "127.0.0.1", "--port", str(PORTS["litellm"]),
                         "--num_workers", "1"], SUT_CORE, env=env, cwd=workdir)
    wait_http(f"http://127.0.0.1:{PORTS['litellm']}/health/liveliness", p, timeout=180)
    return p


def gateway_config(workdir: Path, delays: dict[str, int], name: str, port: int | None = None,
                   access_log: bool = True) -> Path:
    up = upstream_url()
    adapters = "".join(
        f"""  {role}:
    endpoints: ["{up}"]
    model: {role}-d{ms}
    prompt: {ROOT / 'lora_adapters' / role / 'prompt.md'}
    timeout_s: 2.5
""" for role, ms in delays.items())
    conf = workdir / f"gateway-{name}.yaml"
    conf.write_text(f"""server: {{host: 127.0.0.1, port: {port or PORTS['gateway']}, keys: [{{name: bench, key: {KEY}}}]}}
targets:
  - {{name: bench-off, endpoints: ["{up}"], upstream_model: bench-model, refine: false}}
  - {{name: bench-refine, endpoints: ["{up}"], upstream_model: bench-model, refine: true}}
  - {{name: bench-hold, endpoints: ["{up}"], upstream_model: {HOLD_MODEL}, refine: false}}
adapters:
{adapters}refinement: {{deadline_s: 3.0}}
telemetry: {{access_log: {str(access_log).lower()}}}
""")
    return conf


def start_gateway(conf: Path, port: int | None = None, name: str = "gateway") -> Proc:
    exe = ROOT / ".venv" / "bin" / "mpr-gateway"
    port = port or PORTS["gateway"]
    p = Proc(name, [str(exe), "serve", "--config", str(conf), "--host", "127.0.0.1", "--port", str(port)], SUT_CORE)
    wait_http(f"http://127.0.0.1:{port}/health", p)
    return p


# ----------------------------------------------------------------------------- measurements


@dataclass
class Row:
    section: str
    system: str
    scenario: str
    conc: int | str = ""
    rps: float = math.nan
    p50: float = math.nan
    p90: float = math.nan
    p99: float = math.nan
    added: float = math.nan
    cpu_ms: float = math.nan
    rss_mb: float = math.nan
    notes: str = ""
    extra: dict = field(default_factory=dict)


class Meter:
    """CPU accounting for one measured point: the system under test, and load from outside the bench."""

    def __init__(self, bench: "Bench", proc: Proc | None) -> None:
        self.bench, self.proc = bench, proc

    def __enter__(self) -> "Meter":
        self.t0 = time.monotonic()
        self.cores0 = core_times()
        self.ours0 = self.bench.our_cpu_s()
        self.sut0 = self.proc.cpu_s() if self.proc else 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.monotonic() - self.t0
        cores1 = core_times()
        self.sut_s = (self.proc.cpu_s() if self.proc else 0.0) - self.sut0
        tick = os.sysconf("SC_CLK_TCK")
        busy_s = sum((cores1[c][0] - cores1[c][1]) - (self.cores0[c][0] - self.cores0[c][1]) for c in cores1) / tick
        self.foreign_pct = max(0.0, busy_s - (self.bench.our_cpu_s() - self.ours0)) / (len(cores1) * self.wall) * 100
        self.core0 = busy(self.cores0, cores1, SUT_CORE)
        self.core1 = busy(self.cores0, cores1, DRIVER_CORE)

    def notes(self) -> str:
        return f"core0 {self.core0:.0f}% / core1 {self.core1:.0f}%, other load {self.foreign_pct:.0f}%"


PAIRED_MIN_ROUNDS = 3
"""From this many passes on, the issue's ratios are judged on the median of per-pass ratios."""
BARE_LABEL, OFF_LABEL, SKIP_LABEL = "bare Litestar+aiohttp", "refinement off", "refine on, clean prompt (skip gate)"
PAIRS = {"off/bare": (OFF_LABEL, BARE_LABEL), "skip/off": (SKIP_LABEL, OFF_LABEL)}


def rounds_order(matrix: list, k: int) -> list:
    """The points of pass ``k``: in order on even passes, reversed on odd ones, so that a drift of the
    machine over a pass does not favour the systems measured first."""
    return matrix if k % 2 == 0 else matrix[::-1]


def paired_ratios(section: str, conc: int, samples: dict[str, list[Row]]) -> dict[str, dict[str, list[float]]]:
    """Per pass, each pair's req/s and CPU-per-request ratios (``"overhead/32/off/bare": {"rps": [...],
    "cpu": [...]}``): the two points of a pass ran next to each other, so the machine's drift between
    passes cancels out — the maxima of two lists (``best of``) are taken minutes apart."""
    out: dict[str, dict[str, list[float]]] = {}
    for name, (num, den) in PAIRS.items():
        a, b = samples.get(num), samples.get(den)
        if not a or not b:
            continue
        pairs = list(zip(a, b))
        out[f"{section}/{conc}/{name}"] = {
            "rps": [x.rps / y.rps for x, y in pairs if _measured(x.rps) and _measured(y.rps)],
            "cpu": [x.cpu_ms / y.cpu_ms for x, y in pairs if _measured(x.cpu_ms) and _measured(y.cpu_ms)],
        }
    return out


def _measured(value: float) -> bool:
    """A figure a ratio can use: positive and not NaN (a point that served no request has neither)."""
    return value > 0 and not math.isnan(value)


def paired_figure(paired: dict, key: str, measure: str) -> tuple[float, str] | None:
    """The median of a pair's per-pass ratios and its text (``1.02× (median of 3 passes: 0.98, 1.02,
    1.05)``), or None with fewer than :data:`PAIRED_MIN_ROUNDS` passes."""
    values = (paired or {}).get(key, {}).get(measure, [])
    if len(values) < PAIRED_MIN_ROUNDS:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return median, f"{median:.2f}× (median of {len(values)} passes: {', '.join(f'{v:.2f}' for v in values)})"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dur = 2.0 if args.quick else args.duration
        self.warm = 0.5 if args.quick else 1.0
        self.repeat = 1 if args.quick else args.repeat
        self.concs = [1, 32, 128]
        self.rows: list[Row] = []
        self.work = Path(tempfile.mkdtemp(prefix="mpr-bench-"))
        self.procs: list[Proc] = []
        self.facts: dict = {"idle_rss": {}, "paired": {}}
        self.wait_budget = 0.0 if args.quick else args.wait_budget * 60

    def our_cpu_s(self) -> float:
        t = os.times()  # this harness + its waited children (wrk runs)
        return t.user + t.system + t.children_user + t.children_system + sum(p.cpu_s() for p in self.procs)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"  {row.system:8s} {row.scenario:34s} c={row.conc!s:5s} rps={row.rps:9.1f} p50={row.p50:8.3f} "
              f"p99={row.p99:8.3f} cpu={row.cpu_ms:6.3f} rss={row.rss_mb:6.1f} {row.notes}", file=sys.stderr, flush=True)
        return row

    def start(self, fn, *a) -> Proc:
        p = fn(*a)
        self.procs.append(p)
        return p

    def stop(self, p: Proc) -> None:
        p.stop()
        if p in self.procs:
            self.procs.remove(p)

    # wrk ------------------------------------------------------------------
    def wrk(self, url: str, payload: bytes, conc: int, dur: float, headers: str = "") -> dict:
        bf = self.work / "body.json"
        bf.write_bytes(payload)
        env = {**os.environ, "BENCH_BODY_FILE": str(bf), "BENCH_HEADERS": headers, "BENCH_KEY": KEY}
        if b"{n}" in payload:
            env["BENCH_VARY"] = "1"
        argv = [*PRIO, "taskset", "-c", DRIVER_CORE, "wrk", "-t1", f"-c{conc}", f"-d{max(1, round(dur))}s",
                "--timeout", "10s", "-s", str(BENCH / "wrk_post.lua"), url]
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=dur + 60)
        m = re.search(r"WRKJSON (\{.*\})", out.stdout)
        if not m:
            raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
        return json.loads(m.group(1))

    def overhead_point(self, system: str, scenario: str, proc: Proc | None, port: int, payload: bytes,
                       conc: int, dur: float | None = None, path: str = "/v1/chat/completions", headers: str = "") -> Row:
        url = f"http://127.0.0.1:{port}{path}"
        self.wrk(url, payload, conc, self.warm, headers)  # warm-up, discarded
        with Meter(self, proc) as m:
            r = self.wrk(url, payload, conc, dur or self.dur, headers)
        n = r["requests"]
        errs = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
        notes = m.notes() + (f"; {errs} errors" if errs else "")
        return Row("overhead", system, scenario, conc, n / (r["duration_us"] / 1e6), r["p50"] / 1000,
                   r["p90"] / 1000, r["p99"] / 1000, cpu_ms=1000 * m.sut_s / n if n and proc else math.nan,
                   notes=notes, extra={"foreign": m.foreign_pct})

    def stream_point(self, system: str, scenario: str, proc: Proc | None, port: int, payload: bytes,
                     conc: int) -> Row:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        with Meter(self, proc) as m:
            r = loadgen.run(loadgen.stream_run(url, payload, {}, conc, self.dur, 200_000, self.warm))
        notes = f"TTFB; {m.notes()}; whole stream p50 {r['total_p50']:.2f} ms"
        if r["errors"]:
            notes += f"; errors {r['errors']}"
        cpu = 1000 * m.sut_s / r["all_requests"] if proc and r["all_requests"] else math.nan
        return Row("stream TTFB", system, scenario, conc, r["rps"], r["ttfb_p50"], r["ttfb_p90"], r["ttfb_p99"],
                   cpu_ms=cpu, notes=notes, extra={"foreign": m.foreign_pct})

    def foreign_now(self, window: float = 0.5) -> float:
        """CPU % of the whole machine used outside this bench over ``window`` seconds."""
        c0, o0 = core_times(), self.our_cpu_s()
        time.sleep(window)
        c1, o1 = core_times(), self.our_cpu_s()
        tick = os.sysconf("SC_CLK_TCK")
        busy_s = sum((c1[c][0] - c1[c][1]) - (c0[c][0] - c0[c][1]) for c in c1) / tick
        return max(0.0, busy_s - (o1 - o0)) / (len(c1) * window) * 100

    def quiet(self, fn, *a) -> Row:
        """Measure when the machine is quiet; retry a point disturbed by other load.

        Other sessions share this machine. Before a point, wait (up to --quiet-wait s) until load from
        outside the bench is under --quiet %; keep the attempt with the least outside load."""
        tries: list[Row] = []
        waited = 0.0
        for _ in range(self.args.attempts if self.wait_budget > 0 else 1):
            t0 = time.monotonic()
            while (time.monotonic() - t0 < min(self.args.quiet_wait, self.wait_budget)
                   and self.foreign_now() > self.args.quiet):
                pass
            self.wait_budget -= time.monotonic() - t0
            waited += time.monotonic() - t0
            row = fn(*a)
            tries.append(row)
            if row.extra["foreign"] <= self.args.quiet * 1.5:
                break
        best = min(tries, key=lambda r: (round(r.extra["foreign"] / 5), -r.rps))
        if len(tries) > 1 or waited > 1:
            best.notes += f"; {len(tries)} attempt(s), waited {waited:.0f} s for quiet"
        return best

    def best_of(self, rows: list[Row]) -> Row:
        best = max(rows, key=lambda r: r.rps)
        if len(rows) > 1:
            best.notes += f"; best of {len(rows)} (req/s {', '.join(f'{r.rps:,.0f}' for r in rows)})"
        return best

    def refine_point(self, system: str, scenario: str, port: int, payload: bytes, conc: int, note: str) -> Row:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        with Meter(self, None) as m:
            r = loadgen.run(loadgen.headers_run(url, payload, NO_CACHE, conc, self.dur, 100_000, self.warm))
        notes = (f"x-mpr-refine-ms; {note}; end-to-end p50 {r['p50']:.1f} ms; x-mpr-refinement {r['refinement']}; "
                 f"{m.notes()}")
        if r["errors"]:
            notes += f"; errors {r['errors']}"
        return Row("refinement", system, scenario, conc, r["rps"], r["refine_p50"], r["refine_p90"],
                   r["refine_p99"], notes=notes, extra={"e2e_p50": r["p50"], "foreign": m.foreign_pct})

    def refine_headers(self, *a) -> Row:
        return self.add(self.quiet(self.refine_point, *a))

    def memory(self, system: str, proc: Proc, port: int, model: str, n: int) -> None:
        self.add(Row("memory", system, "RSS idle (after start)", "", rss_mb=self.facts["idle_rss"][system]))
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        payload = body(model, CLEAN, stream=True)
        r = loadgen.run(loadgen.hold_streams(url, payload, n, proc.rss_mb, open_timeout=90))
        notes = f"{r['opened']}/{n} streams open after {r['open_s']:.1f} s"
        if r["errors"]:
            notes += f"; errors {r['errors']}"
        self.add(Row("memory", system, f"RSS with {n} open streams", n, rss_mb=r["result"], notes=notes))
        time.sleep(1.0)

    # ----------------------------------------------------------------------
    def run(self) -> None:
        a = self.args
        skip = set(a.skip)
        if not shutil.which("wrk"):
            raise SystemExit("wrk not found: apt-get install wrk")
        if "nginx" not in skip and not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
            print("nginx not found (apt-get install nginx-light): skipping it", file=sys.stderr)
            skip.add("nginx")
        for name, port in PORTS.items():
            if not port_free(port):
                raise SystemExit(f"port {port} ({name}) is busy: pick another --port-base")
        os.sched_setaffinity(0, {int(DRIVER_CORE)})  # this process is the Python load driver
        self.facts["machine"] = machine()
        self.facts["loadavg_start"] = os.getloadavg()
        print(f"work dir {self.work}; load average at start {os.getloadavg()}", file=sys.stderr)

        up = self.start(start_upstream)
        gw_conf = gateway_config(self.work, {"cleaner": 50, "describer": 50, "paraphraser": 50}, "50ms")
        nolog_conf = gateway_config(self.work, {"cleaner": 50, "describer": 50, "paraphraser": 50}, "nolog",
                                    port=PORTS["gateway-nolog"], access_log=False)
        starters = {"nginx": lambda: start_nginx(self.work), "bare": start_bare,
                    "gateway": lambda: start_gateway(gw_conf),
                    "gateway-nolog": lambda: start_gateway(nolog_conf, PORTS["gateway-nolog"], "gateway-nolog")}
        if "gateway" in skip:
            starters.pop("gateway-nolog")
        procs: dict[str, Proc] = {}
        for name, starter in starters.items():  # all idle on core 0 together: points interleave fairly
            if name not in skip:
                procs[name] = self.start(starter)
        time.sleep(1.5)
        for name, p in procs.items():
            self.facts["idle_rss"][name] = p.rss_mb()

        # (system, scenario label, proc, port, model, prompt)
        matrix = [("upstream", "direct (fake upstream)", up, PORTS["upstream"], "bench-model", CLEAN)]
        if "nginx" in procs:
            matrix.append(("nginx", "nginx reverse proxy", procs["nginx"], PORTS["nginx"], "bench-model", CLEAN))
        if "bare" in procs:
            matrix.append(("bare", "bare Litestar+aiohttp", procs["bare"], PORTS["bare"], "bench-model", CLEAN))
        if "gateway" in procs:
            gw = procs["gateway"]
            matrix.append(("gateway", "refinement off", gw, PORTS["gateway"], "bench-off", CLEAN))
            matrix.append(("gateway", "refine on, clean prompt (skip gate)", gw, PORTS["gateway"], "bench-refine", CLEAN))
            matrix.append(("gateway", "refine on, a new clean prompt each request (skip gate)", gw, PORTS["gateway"],
                           "bench-refine", CLEAN_VARIED))
        if "gateway-nolog" in procs:
            matrix.append(("gateway", "refinement off, access log off", procs["gateway-nolog"],
                           PORTS["gateway-nolog"], "bench-off", CLEAN))

        print("overhead (wrk, non-streaming)", file=sys.stderr)
        for conc in self.concs:
            samples: dict[str, list[Row]] = {}
            for k in range(self.repeat):
                for system, label, proc, port, model, prompt in rounds_order(matrix, k):
                    row = self.quiet(self.overhead_point, system, label, proc, port, body(model, prompt), conc)
                    samples.setdefault(label, []).append(row)
            for label, rows in samples.items():
                self.add(self.best_of(rows))
            self.facts["paired"].update(paired_ratios("overhead", conc, samples))
        if "gateway" in procs:  # the Responses API next to chat (refinement off: the proxy path alone)
            for conc in self.concs:
                for system, label, proc, port, model in (
                    ("upstream", "responses: direct (fake upstream)", up, PORTS["upstream"], "bench-model"),
                    ("gateway", "responses: refinement off", procs["gateway"], PORTS["gateway"], "bench-off"),
                ):
                    rows = [self.quiet(self.overhead_point, system, label, proc, port, responses_body(model, CLEAN), conc,
                                       None, "/v1/responses") for _ in range(self.repeat)]
                    self.add(self.best_of(rows))
            for conc in self.concs:  # latency-bound (3 x 50 ms): one pass is enough
                self.add(self.quiet(self.overhead_point, "gateway", "refine on, 3 stages x 50 ms", procs["gateway"],
                                    PORTS["gateway"], body("bench-refine", TYPOS), conc, None, "/v1/chat/completions",
                                    "x-mpr-cache: off"))

        print("streaming (loadgen)", file=sys.stderr)
        for conc in (1, 32):
            samples = {}
            for k in range(self.repeat):
                for system, label, proc, port, model, prompt in rounds_order(matrix, k):
                    if "skip gate" in label or "access log" in label:
                        continue
                    row = self.quiet(self.stream_point, system, label, proc, port, body(model, prompt, stream=True),
                                     conc)
                    samples.setdefault(label, []).append(row)
            for label, rows in samples.items():
                self.add(self.best_of(rows))
            self.facts["paired"].update(paired_ratios("stream TTFB", conc, samples))

        if "gateway" in procs:
            self.refine_headers("gateway", "refinement wall, 3 x 50 ms", PORTS["gateway"],
                                body("bench-refine", TYPOS), 32, "target ≤ slowest + 3 ms = 53 ms")

        print("memory", file=sys.stderr)
        hold = {"gateway": "bench-hold"}
        if "gateway-nolog" in procs:
            self.stop(procs.pop("gateway-nolog"))
        for name, p in procs.items():
            self.memory(name, p, PORTS[name], hold.get(name, HOLD_MODEL), a.streams)
            self.stop(p)

        if "gateway" not in skip:
            conf = gateway_config(self.work, STAGGER, "stagger")
            gw = self.start(start_gateway, conf)
            time.sleep(0.5)
            total, slowest = sum(STAGGER.values()), max(STAGGER.values())
            stages = " / ".join(f"{k[0].upper()}{v}" for k, v in STAGGER.items())
            for conc in (1, 32):
                self.refine_headers("gateway", f"refinement wall, stages {stages} ms", PORTS["gateway"],
                                    body("bench-refine", TYPOS), conc, f"sum {total} ms, max {slowest} ms")
            self.stop(gw)

        if "litellm" not in skip:
            print("LiteLLM", file=sys.stderr)
            lt = self.start(start_litellm, self.work)
            time.sleep(2.0)
            self.facts["idle_rss"]["litellm"] = lt.rss_mb()
            label = f"LiteLLM proxy {litellm_version()}"
            for conc in self.concs:
                self.add(self.quiet(self.overhead_point, "litellm", label, lt, PORTS["litellm"],
                                    body("bench-model", CLEAN), conc))
            for conc in (1, 32):
                self.add(self.quiet(self.stream_point, "litellm", label, lt, PORTS["litellm"],
                                    body("bench-model", CLEAN, stream=True), conc))
            self.memory("litellm", lt, PORTS["litellm"], HOLD_MODEL, a.streams)
            self.stop(lt)
        self.stop(up)
        self.rows.sort(key=lambda r: (SECTIONS.index(r.section), SYSTEMS.index(r.system), r.scenario,
                                      r.conc if isinstance(r.conc, int) else 0))

    def close(self) -> None:
        for p in list(self.procs):
            self.stop(p)
        shutil.rmtree(self.work, ignore_errors=True)


SECTIONS = ["overhead", "stream TTFB", "refinement", "memory"]
SYSTEMS = ["upstream", "nginx", "bare", "litellm", "gateway"]


# ----------------------------------------------------------------------------- report


def machine() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import aiohttp
    import litestar
    import uvicorn

    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "libs": f"litestar {litestar.__version__ if hasattr(litestar, '__version__') else _ver('litestar')}, "
                    f"aiohttp {aiohttp.__version__}, uvicorn {uvicorn.__version__}",
            "nginx": _cmd_version(["nginx", "-v"]), "wrk": _cmd_version(["wrk", "-v"])}


def _ver(name: str) -> str:
    import importlib.metadata as m

    return m.version(name)


def _cmd_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except Exception:  # noqa: BLE001
        return "n/a"


def fmt(v: float, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def finish(rows: list[Row]) -> None:
    """Fill 'added' (vs direct) and ratios vs the bare pass-through, both from this run."""
    def find(section, system, scenario_part, conc):
        for r in rows:
            if r.section == section and r.system == system and scenario_part in r.scenario and r.conc == conc:
                return r
        return None

    for r in rows:
        if r.section in ("overhead", "stream TTFB"):
            base = find(r.section, "upstream", "direct", r.conc)
            if base is not None and r.system != "upstream":
                r.added = r.p50 - base.p50
            bare = find(r.section, "bare", "", r.conc)
            if bare is not None and r.system not in ("upstream", "bare") and bare.rps:
                r.extra["vs_bare"] = r.rps / bare.rps


def table(rows: list[Row]) -> str:
    head = ("| section | system | scenario | c | req/s | ×bare | p50 ms | p90 ms | p99 ms | added p50 ms | "
            "CPU ms/req | RSS MB | notes |")
    out = [head, "|" + "---|" * 13]
    for r in rows:
        vs = r.extra.get("vs_bare")
        out.append(f"| {r.section} | {r.system} | {r.scenario} | {r.conc} | {fmt(r.rps, 1)} | "
                   f"{'' if vs is None else f'{vs:.2f}'} | {fmt(r.p50, 3)} | {fmt(r.p90, 3)} | {fmt(r.p99, 3)} | "
                   f"{fmt(r.added, 3)} | {fmt(r.cpu_ms, 3)} | {fmt(r.rss_mb, 1)} | {r.notes} |")
    return "\n".join(out)


def verdicts(rows: list[Row], paired: dict | None = None) -> str:
    """The targets against this run's figures. The issue's ratios are judged on the median of the
    per-pass ratios (:func:`paired_ratios`) when there are :data:`PAIRED_MIN_ROUNDS` passes or more,
    on the best of each system's passes otherwise; both are printed."""
    def get(section, system, scenario, conc=None):
        for r in rows:
            if r.section == section and r.system == system and (r.scenario == scenario or (
                    scenario.endswith("*") and r.scenario.startswith(scenario[:-1]))) and (conc is None or r.conc == conc):
                return r
        return None

    lines = []

    def check(name: str, ok: bool | None, got: str) -> None:
        mark = "n/a" if ok is None else ("MET" if ok else "MISSED")
        lines.append(f"- **{mark}** {name}: {got}")

    off32 = get("overhead", "gateway", "refinement off", 32)
    bare32 = get("overhead", "bare", "*", 32)
    off1 = get("overhead", "gateway", "refinement off", 1)
    st32 = get("stream TTFB", "gateway", "refinement off", 32)
    st1 = get("stream TTFB", "gateway", "refinement off", 1)
    bst32 = get("stream TTFB", "bare", "*", 32)
    skip32 = get("overhead", "gateway", "refine on, clean prompt (skip gate)", 32)
    ref50 = get("refinement", "gateway", "refinement wall, 3 x 50 ms", 32)
    idle = get("memory", "gateway", "RSS idle (after start)")
    held = get("memory", "gateway", "RSS with*")
    skip_new32 = get("overhead", "gateway", "refine on, a new clean prompt each request (skip gate)", 32)
    bst1 = get("stream TTFB", "bare", "*", 1)
    if off32:
        check("refinement off ≥ 2,000 req/s at c=32", off32.rps >= 2000, f"{off32.rps:,.0f} req/s")
    def judged(key: str, measure: str, best: float, best_text: str) -> tuple[float, str]:
        """The paired median when there is one (the best-of figure beside it), else the best-of figure."""
        pair = paired_figure(paired or {}, key, measure)
        if pair is None:
            return best, best_text
        return pair[0], f"{pair[1]}; best of passes {best_text}"

    if off32 and bare32:
        value, text = judged("overhead/32/off/bare", "rps", off32.rps / bare32.rps,
                             f"{off32.rps / bare32.rps:.2f}× ({off32.rps:,.0f} vs {bare32.rps:,.0f} req/s)")
        check("(issue 24) refinement off ≥ 1.00× the bare pass-through's req/s at c=32", value >= 1.0, text)
        value, text = judged("overhead/32/off/bare", "cpu", off32.cpu_ms / bare32.cpu_ms,
                             f"{off32.cpu_ms / bare32.cpu_ms:.2f}× ({off32.cpu_ms:.3f} vs {bare32.cpu_ms:.3f} ms)")
        check("(issue 24) refinement off: CPU per request ≤ bare's at c=32", value <= 1.0, text)
    if off1:
        check("added p50 at c=1 ≤ 0.6 ms", off1.added <= 0.6, f"+{off1.added:.3f} ms")
    if st1:
        check("streaming TTFB added ≤ 1 ms (c=1)", st1.added <= 1.0, f"+{st1.added:.3f} ms")
    if st32:
        extra = f" (bare: +{bst32.added:.3f} ms)" if bst32 else ""
        check("streaming TTFB added ≤ 1 ms (c=32, closed loop: includes queueing)", st32.added <= 1.0,
              f"+{st32.added:.3f} ms{extra}")
    for conc, gw_stream, bare_stream in ((1, st1, bst1), (32, st32, bst32)):
        if gw_stream and bare_stream:
            value, text = judged(f"stream TTFB/{conc}/off/bare", "cpu", gw_stream.cpu_ms / bare_stream.cpu_ms,
                                 f"{gw_stream.cpu_ms / bare_stream.cpu_ms:.2f}× ({gw_stream.cpu_ms:.3f} vs {bare_stream.cpu_ms:.3f} ms)")
            check(f"(issue 24) streaming: CPU per request ≤ 1.10× bare's (c={conc})", value <= 1.10, text)
    nolog32 = get("overhead", "gateway", "refinement off, access log off", 32)
    if off32 and nolog32:
        lines.append(f"- (no target) the access log at c=32, served: {1000 * (off32.cpu_ms - nolog32.cpu_ms):.1f} µs of CPU "
                     f"per request (refinement off with it, {off32.cpu_ms:.3f} ms, less without, {nolog32.cpu_ms:.3f} ms)")
    if skip32 and off32:
        value, text = judged("overhead/32/skip/off", "rps", skip32.rps / off32.rps,
                             f"{skip32.rps / off32.rps:.2f}× ({skip32.rps:,.0f} req/s; CPU {skip32.cpu_ms / off32.cpu_ms:.2f}× refinement off's)")
        check("(issue 24) skip gate passing a clean prompt ≥ 0.90× refinement off (c=32)", value >= 0.9, text)
    if skip_new32 and off32:
        lines.append(f"- (no target) a new clean prompt every request, its verdict not memoised: "
                     f"{skip_new32.rps / off32.rps:.2f}× refinement off ({skip_new32.rps:,.0f} req/s, "
                     f"CPU {skip_new32.cpu_ms / off32.cpu_ms:.2f}×)")
    if ref50:
        check("three 50 ms stages: refinement wall ≤ 53 ms at c=32 (p50)", ref50.p50 <= 53,
              f"p50 {ref50.p50:.1f} ms, p90 {ref50.p90:.1f}, p99 {ref50.p99:.1f}")
    if idle:
        check("(issue 24) idle RSS ≤ 120 MB (refinement on, the gate's lexicon and language model loaded)", idle.rss_mb <= 120,
              f"{idle.rss_mb:.1f} MB")
    if held:
        check(f"RSS ≤ 200 MB with {held.conc} open streams", held.rss_mb <= 200, f"{held.rss_mb:.1f} MB ({held.notes})")
    return "\n".join(lines)


def routing_section(replicas: int = 4) -> str:
    """The cache-aware routing decision's cost per request (``bench/routing.py``), pinned to the
    systems' core like them, with its target."""
    import routing  # noqa: PLC0415 - bench/ is on sys.path

    os.sched_setaffinity(0, {int(SUT_CORE)})
    try:
        figures = routing.measure(replicas)
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    total = figures["key + affine pick"]
    verdict = "MET" if total <= 5.0 else "MISSED"
    return f"\n{routing.report(figures, replicas)}\n\n- **{verdict}** routing decision ≤ 5 µs a request: {total:.2f} µs\n"


def features_section() -> str:
    """What each default-on feature costs a request (``bench/features.py``), pinned to the systems' core."""
    import asyncio  # noqa: PLC0415
    import features  # noqa: PLC0415 - bench/ is on sys.path

    os.sched_setaffinity(0, {int(SUT_CORE)})
    try:
        rows = asyncio.run(features.measure())
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return f"\nPer-feature cost (in-process, µs of CPU per request):\n\n{features.report(rows)}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 s per point instead of --duration")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per measured point (default 5)")
    ap.add_argument("--streams", type=int, default=1000, help="open streams for the memory figure")
    ap.add_argument("--skip", action="append", default=[], choices=["nginx", "bare", "litellm", "gateway"])
    ap.add_argument("--quiet", type=float, default=10.0,
                    help="%% of the machine's CPU used by others under which a point may start (default 10)")
    ap.add_argument("--quiet-wait", type=float, default=15.0, help="longest wait for quiet before a point (s)")
    ap.add_argument("--wait-budget", type=float, default=10.0, help="minutes of waiting for quiet in all")
    ap.add_argument("--attempts", type=int, default=2, help="tries of a point disturbed by other load")
    ap.add_argument("--nice", type=int, default=0,
                    help="run every bench process at nice -N (root): on a shared machine the figures then "
                         "measure the software, not the neighbours; it slows other tenants while it runs")
    ap.add_argument("--repeat", type=int, default=4,
                    help="passes over the overhead/streaming matrix (order reversed every other pass: an even count "
                         "puts each system first as often): the table keeps each point's best, the issue's ratios take "
                         "the median of the per-pass ratios from 3 passes on")
    ap.add_argument("--port-base", type=int, default=19100, help="five consecutive loopback ports from here")
    ap.add_argument("--report", type=Path, help="only print the table and verdicts of a saved --json run")
    ap.add_argument("--json", type=Path, help="also write rows and machine facts as JSON here")
    args = ap.parse_args()
    if args.report:
        saved = json.loads(args.report.read_text())
        rows = [Row(**r) for r in saved["rows"]]
        finish(rows)
        print(table(rows))
        print("\nTargets (issues 6 and 24):\n")
        print(verdicts(rows, saved.get("paired")))
        return
    for name in PORTS:
        PORTS[name] += args.port_base
    if args.nice:
        PRIO.extend(["nice", "-n", str(-args.nice)])
        os.setpriority(os.PRIO_PROCESS, 0, -args.nice)
    bench = Bench(args)
    started = time.time()
    try:
        bench.run()
    finally:
        bench.close()
    finish(bench.rows)
    m = bench.facts.get("machine", {})
    print(f"\nMachine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('mem_gib')} GiB, Linux {m.get('kernel')}, "
          f"Python {m.get('python')} ({m.get('libs')}); {m.get('nginx')}; {m.get('wrk')}. "
          f"Systems under test on core {SUT_CORE}; fake upstream + drivers on core {DRIVER_CORE}. "
          f"{'quick: 2 s' if args.quick else f'{args.duration:g} s'} per point, best of {bench.repeat} passes for "
          f"overhead/streaming (ratios: median of per-pass ratios from {PAIRED_MIN_ROUNDS} passes on); load average at start {tuple(round(x, 2) for x in bench.facts.get('loadavg_start', ()))}"
          f" (the 'other load' note is CPU used outside this bench during the point)"
          f"{f'; bench processes at nice -{args.nice}' if args.nice else ''}; "
          f"run took {time.time() - started:.0f} s.\n")
    print(table(bench.rows))
    print("\nTargets (issues 6 and 24):\n")
    print(verdicts(bench.rows, bench.facts["paired"]))
    print(routing_section())
    print(features_section())
    if args.json:
        args.json.write_text(json.dumps({"machine": m, "rows": [r.__dict__ for r in bench.rows], "paired": bench.facts["paired"]},
                                        indent=1, default=str))


if __name__ == "__main__":
    main()
