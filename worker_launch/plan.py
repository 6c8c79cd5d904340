"""Resolve what one worker node serves: roles, base model, LoRA modules, port, device settings.

Pure: takes the already-loaded config and manifests, returns a :class:`LaunchSpec`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from worker_launch import DEFAULT_PORTS
from worker_launch.config import WorkerConfig
from worker_launch.manifest import AdapterManifest, ManifestError, Selection, resolve_ref, split_role_version

Device = Literal["gpu", "cpu"]

VLLM_LORA_RANKS: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for ``--max-lora-rank``."""


class PlanError(Exception):
    """The requested launch cannot be resolved (unknown role, conflicting base models, ...)."""


@dataclass(frozen=True)
class LaunchOptions:
    """Command-line choices; ``None`` means "use the config"."""

    roles: tuple[str, ...]
    size: str | None = None
    device: Device = "gpu"
    host: str | None = None
    port: int | None = None
    base_model: str | None = None
    adapters: Mapping[str, str] = field(default_factory=dict)
    vllm_python: str | None = None
    otlp_traces_endpoint: str | None = None
    extra_args: tuple[str, ...] = ()
    versions: Mapping[str, int] = field(default_factory=dict)  # role -> version (``--role cleaner@2``)


@dataclass(frozen=True)
class LoraModule:
    """One ``--lora-modules`` entry plus what verification needs.

    ``version``/``sha256``/``record_base_model`` come from the manifest's version record when a
    version is served (``sha256`` is checked even when the weights were placed elsewhere)."""

    role: str
    name: str
    path: str
    rank: int
    version: int | None = None
    sha256: str | None = None
    record_base_model: str | None = None


@dataclass(frozen=True)
class LaunchSpec:
    """Everything the vLLM command is built from."""

    python: str
    base_model: str
    served_model_name: str | None
    host: str
    port: int
    device: Device
    loras: tuple[LoraModule, ...]
    max_lora_rank: int
    max_loras: int
    dtype: str
    max_model_len: int
    gpu_memory_utilization: float | None = None
    cpu_kvcache_space_gib: int | None = None
    cpu_omp_threads_bind: str | None = None
    otlp_traces_endpoint: str | None = None
    log_requests: bool = True
    extra_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    runtime_lora_updating: bool = True  # VLLM_ALLOW_RUNTIME_LORA_UPDATING: `mpr-worker adapters load/unload`

    @property
    def model_name(self) -> str:
        """The name vLLM lists the base model under."""
        return self.served_model_name or self.base_model

    @property
    def lora_names(self) -> tuple[str, ...]:
        return tuple(lora.name for lora in self.loras)


def parse_roles(text: str, known: Sequence[str]) -> tuple[str, ...]:
    """``"cleaner,describer"`` → ``("cleaner", "describer")``; rejects unknown and repeated roles.
    A role may name a version (``cleaner@2``): the version is dropped here (:func:`parse_role_versions`)."""
    try:
        roles = tuple(split_role_version(r)[0] for r in text.split(",") if r.strip())
    except ManifestError as exc:
        raise PlanError(str(exc)) from None
    if not roles:
        raise PlanError("--role needs at least one role")
    unknown = [r for r in roles if r not in known]
    if unknown:
        raise PlanError(f"unknown role(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if len(set(roles)) != len(roles):
        raise PlanError(f"role listed twice in {text!r}")
    return roles


def parse_role_versions(text: str) -> dict[str, int]:
    """``"cleaner@2,describer"`` → ``{"cleaner": 2}``: the versions named in ``--role``."""
    out: dict[str, int] = {}
    for item in text.split(","):
        if item.strip():
            try:
                role, version = split_role_version(item)
            except ManifestError as exc:
                raise PlanError(str(exc)) from None
            if version is not None:
                out[role] = version
    return out


def parse_adapter_overrides(items: Sequence[str]) -> dict[str, str]:
    """``["cleaner=/models/x"]`` → ``{"cleaner": "/models/x"}``."""
    out: dict[str, str] = {}
    for item in items:
        role, sep, path = item.partition("=")
        if not sep or not role.strip() or not path.strip():
            raise PlanError(f"--adapter expects ROLE=PATH, got {item!r}")
        out[role.strip()] = path.strip()
    return out


def vllm_lora_rank(rank: int) -> int:
    """Round a LoRA rank up to the nearest value vLLM's ``--max-lora-rank`` accepts."""
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise PlanError(f"LoRA rank {rank} exceeds vLLM's maximum {VLLM_LORA_RANKS[-1]}")


def default_vllm_python(env: Mapping[str, str]) -> str:
    """``$MPR_VLLM_PYTHON``, else this interpreter (vLLM installed alongside the launcher)."""
    return env.get("MPR_VLLM_PYTHON") or sys.executable


def _selections(opts: LaunchOptions, config: WorkerConfig, size: str,
                manifests: Mapping[str, AdapterManifest]) -> dict[str, Selection]:
    """Each role's selection: ``--role ROLE@N``, else the config's ``versions``, else ``current``/variant."""
    out: dict[str, Selection] = {}
    for role in opts.roles:
        out[role] = manifests[role].selection(size, opts.versions.get(role, config.versions.get(role)))
    return out


def _base_model(opts: LaunchOptions, config: WorkerConfig, config_dir: Path,
                selections: Mapping[str, Selection], cwd: Path, size: str) -> str:
    if opts.base_model:
        return resolve_ref(opts.base_model, cwd)
    if config.base_model:
        return resolve_ref(config.base_model, config_dir)
    bases = {selections[role].base_model for role in opts.roles}
    if len(bases) > 1:
        raise PlanError(f"roles {', '.join(opts.roles)} need different base models for size {size}: "
                        f"{', '.join(sorted(bases))}; one vLLM serves one base model")
    return bases.pop()


def _lora_path(role: str, opts: LaunchOptions, config: WorkerConfig, config_dir: Path,
               selection: Selection, manifest_dir: Path, cwd: Path) -> str:
    if role in opts.adapters:
        return resolve_ref(opts.adapters[role], cwd)
    if role in config.adapters:
        return resolve_ref(config.adapters[role], config_dir)
    if selection.from_record:
        return selection.weights  # already absolute (resolved against the manifest)
    return resolve_ref(selection.weights, manifest_dir)


def resolve_launch(opts: LaunchOptions, config: WorkerConfig, config_dir: Path,
                   manifests: Mapping[str, AdapterManifest], env: Mapping[str, str] | None = None,
                   cwd: Path | None = None) -> LaunchSpec:
    """Combine CLI options, the worker config and the role manifests into a :class:`LaunchSpec`."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    size = opts.size or config.size
    unknown = [r for r in opts.adapters if r not in opts.roles]
    if unknown:
        raise PlanError(f"--adapter given for role(s) not launched: {', '.join(unknown)}")
    missing = [r for r in opts.roles if r not in manifests]
    if missing:
        raise PlanError(f"no manifest for role(s) {', '.join(missing)} in {config.adapters_dir}")
    unlaunched = [r for r in opts.versions if r not in opts.roles]
    if unlaunched:
        raise PlanError(f"version given for role(s) not launched: {', '.join(unlaunched)}")
    selections = _selections(opts, config, size, manifests)
    base_model = _base_model(opts, config, config_dir, selections, cwd, size)
    loras = tuple(
        LoraModule(
            role=role,
            name=selections[role].name,
            path=_lora_path(role, opts, config, config_dir, selections[role], config.adapters_dir / role, cwd),
            rank=manifests[role].lora.rank,
            version=selections[role].version,
            sha256=selections[role].sha256,
            record_base_model=selections[role].base_model if selections[role].from_record else None,
        )
        for role in opts.roles
    )
    names = [lora.name for lora in loras]
    if len(set(names)) != len(names):
        raise PlanError(f"two roles share a LoRA name: {names}")
    port = opts.port if opts.port is not None else config.ports.get(opts.roles[0], DEFAULT_PORTS.get(opts.roles[0]))
    if port is None:
        raise PlanError(f"no port configured for role {opts.roles[0]!r}; pass --port or set ports in the config")
    max_rank = config.max_lora_rank or max(lora.rank for lora in loras)
    device_settings = {
        "gpu": dict(dtype=config.gpu.dtype, max_model_len=config.gpu.max_model_len,
                    gpu_memory_utilization=config.gpu.gpu_memory_utilization),
        "cpu": dict(dtype=config.cpu.dtype, max_model_len=config.cpu.max_model_len,
                    cpu_kvcache_space_gib=config.cpu.kvcache_space_gib,
                    cpu_omp_threads_bind=config.cpu.omp_threads_bind),
    }[opts.device]
    return LaunchSpec(
        python=opts.vllm_python or config.vllm_python or default_vllm_python(env),
        base_model=base_model,
        served_model_name=config.served_model_name,
        host=opts.host or config.host,
        port=port,
        device=opts.device,
        loras=loras,
        max_lora_rank=vllm_lora_rank(max_rank),
        max_loras=config.max_loras or len(loras),
        otlp_traces_endpoint=opts.otlp_traces_endpoint or config.otlp_traces_endpoint,
        log_requests=config.log_requests,
        extra_args=tuple(config.extra_args) + tuple(opts.extra_args),
        env=dict(config.env),
        runtime_lora_updating=config.runtime_lora_updating,
        **device_settings,  # type: ignore[arg-type]
    )
