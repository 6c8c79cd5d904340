"""The vLLM command line built from a launch spec."""

from __future__ import annotations

import json
import shlex

from worker_launch.command import VLLM_ENTRYPOINT, build_vllm_command, lora_module_arg
from worker_launch.plan import LaunchSpec, LoraModule

LORAS = (LoraModule("cleaner", "cleaner", "/m/cleaner lora", 8), LoraModule("describer", "describer", "org/describer", 16))


def spec(**changes: object) -> LaunchSpec:
    base = dict(python="/venv/bin/python", base_model="/models/base", served_model_name=None, host="0.0.0.0",
                port=8002, device="gpu", loras=LORAS, max_lora_rank=16, max_loras=2, dtype="auto",
                max_model_len=8192, gpu_memory_utilization=0.85, runtime_lora_updating=False)
    base.update(changes)
    return LaunchSpec(**base)  # type: ignore[arg-type]


def flag(argv: tuple[str, ...], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_gpu_command() -> None:
    cmd = build_vllm_command(spec())
    argv = cmd.argv
    assert argv[:3] == ("/venv/bin/python", "-m", VLLM_ENTRYPOINT)
    assert flag(argv, "--model") == "/models/base"
    assert (flag(argv, "--host"), flag(argv, "--port")) == ("0.0.0.0", "8002")
    assert "--enable-lora" in argv
    assert (flag(argv, "--max-lora-rank"), flag(argv, "--max-loras")) == ("16", "2")
    assert flag(argv, "--gpu-memory-utilization") == "0.85"
    assert (flag(argv, "--dtype"), flag(argv, "--max-model-len")) == ("auto", "8192")
    assert "--served-model-name" not in argv and "--otlp-traces-endpoint" not in argv
    assert cmd.env == {}


def test_lora_modules_use_the_json_form_with_base_model_name() -> None:
    argv = build_vllm_command(spec(served_model_name="llama-3b")).argv
    i = argv.index("--lora-modules")
    entries = [json.loads(a) for a in argv[i + 1 : i + 3]]
    assert entries == [
        {"name": "cleaner", "path": "/m/cleaner lora", "base_model_name": "llama-3b"},
        {"name": "describer", "path": "org/describer", "base_model_name": "llama-3b"},
    ]
    assert argv.count("--lora-modules") == 1
    assert flag(argv, "--served-model-name") == "llama-3b"
    assert json.loads(lora_module_arg(LORAS[0], "/models/base"))["base_model_name"] == "/models/base"


def test_cpu_command_sets_dtype_and_cpu_env() -> None:
    cmd = build_vllm_command(spec(device="cpu", dtype="float32", gpu_memory_utilization=None,
                                  cpu_kvcache_space_gib=2, cpu_omp_threads_bind="0-3"))
    assert flag(cmd.argv, "--dtype") == "float32"
    assert "--gpu-memory-utilization" not in cmd.argv
    assert cmd.env == {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": "0-3"}


def test_gpu_settings_are_not_used_on_cpu() -> None:
    cmd = build_vllm_command(spec(device="cpu", gpu_memory_utilization=0.5))
    assert "--gpu-memory-utilization" not in cmd.argv


def test_otlp_extra_args_env_and_request_logging() -> None:
    cmd = build_vllm_command(spec(otlp_traces_endpoint="http://collector:4317", extra_args=("--seed", "7"),
                                  env={"HF_HOME": "/hf"}, log_requests=True))
    assert flag(cmd.argv, "--otlp-traces-endpoint") == "http://collector:4317"
    assert cmd.argv[-2:] == ("--seed", "7"), "extra args come last so they can override"
    assert "--enable-log-requests" in cmd.argv
    assert cmd.env == {"OTEL_SERVICE_NAME": "vllm-cleaner-describer", "HF_HOME": "/hf"}
    assert "--enable-log-requests" not in build_vllm_command(spec(log_requests=False)).argv


def test_http_traces_url_selects_the_http_exporter(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raising=False)
    cmd = build_vllm_command(spec(otlp_traces_endpoint="http://127.0.0.1:4318/v1/traces"))
    assert cmd.env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "http/protobuf"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")  # an operator's choice wins
    cmd = build_vllm_command(spec(otlp_traces_endpoint="http://127.0.0.1:4318/v1/traces"))
    assert "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" not in cmd.env


def test_shell_line_round_trips() -> None:
    cmd = build_vllm_command(spec(device="cpu", cpu_kvcache_space_gib=1))
    words = shlex.split(cmd.shell())
    assert words[0] == "VLLM_CPU_KVCACHE_SPACE=1"
    assert tuple(words[1:]) == cmd.argv


def test_runtime_lora_updating_is_on_by_default_and_can_be_turned_off() -> None:
    on = build_vllm_command(LaunchSpec(**{**spec().__dict__, "runtime_lora_updating": True}))
    assert on.env == {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    assert LaunchSpec.__dataclass_fields__["runtime_lora_updating"].default is True
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in build_vllm_command(spec()).env
    # an operator's env wins (worker.yaml env: {VLLM_ALLOW_RUNTIME_LORA_UPDATING: "0"})
    off = build_vllm_command(spec(runtime_lora_updating=True, env={"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "0"}))
    assert off.env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "0"
