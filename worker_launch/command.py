"""Build the vLLM OpenAI-server command line and environment from a :class:`LaunchSpec` (pure)."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from worker_launch.plan import LaunchSpec, LoraModule

VLLM_ENTRYPOINT = "vllm.entrypoints.openai.api_server"
"""Run as ``python -m``: works even where a wheel's ``vllm`` console script is broken."""

_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
RUNTIME_LORA_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"
"""vLLM serves ``POST /v1/load_lora_adapter`` and ``/v1/unload_lora_adapter`` only with this set."""


@dataclass(frozen=True)
class Command:
    """argv plus the environment variables to add to the inherited environment."""

    argv: tuple[str, ...]
    env: Mapping[str, str]

    def shell(self) -> str:
        """A copy-pasteable shell line (``VAR=value ... argv``)."""
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        return (prefix + " " if prefix else "") + shlex.join(self.argv)


def lora_module_arg(lora: LoraModule, base_model_name: str) -> str:
    """One ``--lora-modules`` value in vLLM's JSON form."""
    return json.dumps({"name": lora.name, "path": lora.path, "base_model_name": base_model_name},
                      separators=(",", ":"))


def build_vllm_command(spec: LaunchSpec) -> Command:
    """The full vLLM command for ``spec``: base model, LoRA modules, port, device and tracing flags."""
    argv: list[str] = [spec.python, "-m", VLLM_ENTRYPOINT, "--model", spec.base_model]
    if spec.served_model_name:
        argv += ["--served-model-name", spec.served_model_name]
    argv += ["--host", spec.host, "--port", str(spec.port)]
    argv += ["--enable-lora", "--max-lora-rank", str(spec.max_lora_rank), "--max-loras", str(spec.max_loras)]
    argv += ["--lora-modules", *(lora_module_arg(lora, spec.model_name) for lora in spec.loras)]
    argv += ["--dtype", spec.dtype, "--max-model-len", str(spec.max_model_len)]
    if spec.device == "gpu" and spec.gpu_memory_utilization is not None:
        argv += ["--gpu-memory-utilization", str(spec.gpu_memory_utilization)]
    if spec.otlp_traces_endpoint:
        argv += ["--otlp-traces-endpoint", spec.otlp_traces_endpoint]
    if spec.log_requests:
        argv.append("--enable-log-requests")
    argv += list(spec.extra_args)

    env: dict[str, str] = {}
    if spec.runtime_lora_updating:
        env[RUNTIME_LORA_ENV] = "True"
    if spec.device == "cpu":
        if spec.cpu_kvcache_space_gib is not None:
            env["VLLM_CPU_KVCACHE_SPACE"] = str(spec.cpu_kvcache_space_gib)
        if spec.cpu_omp_threads_bind is not None:
            env["VLLM_CPU_OMP_THREADS_BIND"] = spec.cpu_omp_threads_bind
    if spec.otlp_traces_endpoint:
        env["OTEL_SERVICE_NAME"] = "vllm-" + "-".join(lora.role for lora in spec.loras)
        if spec.otlp_traces_endpoint.rstrip("/").endswith("/v1/traces") and _PROTOCOL not in os.environ:
            # vLLM exports over gRPC by default; a full OTLP/HTTP traces URL means HTTP/protobuf.
            env[_PROTOCOL] = "http/protobuf"
    env.update(spec.env)
    return Command(argv=tuple(argv), env=env)
