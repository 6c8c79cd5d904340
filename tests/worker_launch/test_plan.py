"""Resolving a launch: roles, sizes, ports, base model, adapter paths, ranks."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker_launch import ROLES
from worker_launch.config import REPO_ADAPTERS_DIR, WorkerConfig
from worker_launch.manifest import AdapterManifest, load_manifest, parse_manifest
from worker_launch.plan import (
    LaunchOptions,
    PlanError,
    parse_adapter_overrides,
    parse_roles,
    resolve_launch,
    vllm_lora_rank,
)

MANIFESTS = {role: load_manifest(REPO_ADAPTERS_DIR, role) for role in ROLES}
ENV = {"MPR_VLLM_PYTHON": "/opt/vllm/bin/python"}


def resolve(roles: tuple[str, ...], config: WorkerConfig | None = None, **opts: object):
    return resolve_launch(LaunchOptions(roles=roles, **opts), config or WorkerConfig(), Path("/etc/mpr"),
                          MANIFESTS, env=ENV, cwd=Path("/work"))


def test_parse_roles() -> None:
    assert parse_roles("cleaner", ROLES) == ("cleaner",)
    assert parse_roles(" cleaner, describer ,paraphraser", ROLES) == ROLES
    with pytest.raises(PlanError, match="unknown role"):
        parse_roles("cleaner,summarizer", ROLES)
    with pytest.raises(PlanError, match="twice"):
        parse_roles("cleaner,cleaner", ROLES)
    with pytest.raises(PlanError):
        parse_roles(" , ", ROLES)


def test_parse_adapter_overrides() -> None:
    assert parse_adapter_overrides(["cleaner=/m/c", "describer = ./d"]) == {"cleaner": "/m/c", "describer": "./d"}
    for bad in ("cleaner", "=x", "cleaner="):
        with pytest.raises(PlanError, match="ROLE=PATH"):
            parse_adapter_overrides([bad])


@pytest.mark.parametrize(("rank", "expected"), [(1, 1), (2, 8), (8, 8), (9, 16), (64, 64), (65, 128), (300, 320)])
def test_vllm_lora_rank_rounds_up_to_an_accepted_value(rank: int, expected: int) -> None:
    assert vllm_lora_rank(rank) == expected


def test_vllm_lora_rank_too_big() -> None:
    with pytest.raises(PlanError):
        vllm_lora_rank(1000)


@pytest.mark.parametrize(("role", "port"), [("cleaner", 8002), ("describer", 8003), ("paraphraser", 8004)])
def test_single_role_uses_its_default_port_and_manifest(role: str, port: int) -> None:
    spec = resolve((role,))
    assert spec.port == port
    assert spec.base_model == "meta-llama/Llama-3.2-3B-Instruct"
    assert spec.loras[0].name == role
    assert spec.loras[0].path == MANIFESTS[role].variant("3b").weights
    assert spec.max_loras == 1
    assert spec.max_lora_rank == 64
    assert spec.python == "/opt/vllm/bin/python"


def test_size_8b_picks_the_8b_variant() -> None:
    spec = resolve(("describer",), size="8b")
    assert spec.base_model == "meta-llama/Llama-3.1-8B-Instruct"
    assert "llama31_8b" in spec.loras[0].path


def test_unknown_size_names_the_available_ones() -> None:
    with pytest.raises(Exception, match="available: 3b, 8b"):
        resolve(("cleaner",), size="70b")


def test_multi_role_uses_first_roles_port_unless_given() -> None:
    spec = resolve(("describer", "cleaner"))
    assert spec.port == 8003
    assert spec.lora_names == ("describer", "cleaner")
    assert spec.max_loras == 2
    assert resolve(ROLES, port=9000).port == 9000


def test_config_ports_host_and_python() -> None:
    config = WorkerConfig(ports={"cleaner": 18002}, host="10.0.0.2", vllm_python="/usr/bin/python3")
    spec = resolve(("cleaner",), config)
    assert (spec.port, spec.host, spec.python) == (18002, "10.0.0.2", "/usr/bin/python3")
    assert resolve(("cleaner",), config, host="127.0.0.1", vllm_python="/x/python").host == "127.0.0.1"


def test_overrides_resolve_relative_paths() -> None:
    config = WorkerConfig(base_model="./models/base", adapters={"cleaner": "./weights/cleaner"})
    spec = resolve(("cleaner", "describer"), config)
    assert spec.base_model == "/etc/mpr/models/base"
    assert spec.loras[0].path == "/etc/mpr/weights/cleaner"
    cli = resolve(("cleaner",), config, base_model="meta-llama/Other", adapters={"cleaner": "./mine"})
    assert cli.base_model == "meta-llama/Other"
    assert cli.loras[0].path == "/work/mine"


def test_adapter_override_for_a_role_not_launched_is_an_error() -> None:
    with pytest.raises(PlanError, match="not launched"):
        resolve(("cleaner",), adapters={"describer": "/x"})


def _manifest(role: str, base: str, rank: int = 8) -> AdapterManifest:
    return parse_manifest({"name": role, "role": role, "training": {"dataset": "d", "samples": 1},
                           "lora": {"rank": rank}, "variants": {"3b": {"base_model": base, "weights": f"./{role}"}}},
                          "test")


def test_roles_on_different_base_models_cannot_share_a_server() -> None:
    manifests = {"cleaner": _manifest("cleaner", "org/a"), "describer": _manifest("describer", "org/b")}
    with pytest.raises(PlanError, match="different base models"):
        resolve_launch(LaunchOptions(roles=("cleaner", "describer")), WorkerConfig(), Path("/c"), manifests, env=ENV)


def test_max_rank_is_the_largest_manifest_rank_rounded() -> None:
    manifests = {"cleaner": _manifest("cleaner", "org/a", 8), "describer": _manifest("describer", "org/a", 24)}
    spec = resolve_launch(LaunchOptions(roles=("cleaner", "describer")), WorkerConfig(), Path("/c"), manifests, env=ENV)
    assert spec.max_lora_rank == 32
    config = WorkerConfig(max_lora_rank=64, max_loras=4)
    spec = resolve_launch(LaunchOptions(roles=("cleaner",)), config, Path("/c"), manifests, env=ENV)
    assert (spec.max_lora_rank, spec.max_loras) == (64, 4)


def test_device_settings() -> None:
    cpu = resolve(ROLES, device="cpu")
    assert (cpu.dtype, cpu.cpu_kvcache_space_gib, cpu.gpu_memory_utilization) == ("float32", 4, None)
    gpu = resolve(ROLES, device="gpu")
    assert (gpu.dtype, gpu.gpu_memory_utilization, gpu.cpu_kvcache_space_gib) == ("auto", 0.9, None)


def test_missing_manifest() -> None:
    with pytest.raises(PlanError, match="no manifest"):
        resolve_launch(LaunchOptions(roles=("cleaner",)), WorkerConfig(), Path("/c"), {}, env=ENV)
