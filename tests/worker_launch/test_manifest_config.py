"""Adapter manifests, prompt templates and worker configs shipped in the repo, and their validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.refinement.prompts import SLOT, load_template
from worker_launch import ROLES
from worker_launch.config import REPO_ADAPTERS_DIR, WorkerConfigError, load_worker_config, parse_worker_config
from worker_launch.manifest import ManifestError, discover_adapters, load_manifest, looks_like_local_path, parse_manifest, resolve_ref

EXAMPLE = Path(__file__).resolve().parents[2] / "worker_launch" / "worker.example.yaml"
TRAINING = {"cleaner": ("JFLEG", 6012), "describer": ("Wikipedia (articles only)", 14982),
            "paraphraser": ("PAWS + QQP", 143658)}


@pytest.mark.parametrize("role", ROLES)
def test_shipped_manifest(role: str) -> None:
    manifest = load_manifest(REPO_ADAPTERS_DIR, role)
    assert manifest.name == role == manifest.role
    assert (manifest.training.dataset, manifest.training.samples) == TRAINING[role]
    assert manifest.variant("3b").base_model == "meta-llama/Llama-3.2-3B-Instruct"
    assert manifest.variant("8b").base_model == "meta-llama/Llama-3.1-8B-Instruct"
    assert manifest.prompt == "prompt.md"


@pytest.mark.parametrize("role", ROLES)
def test_shipped_prompt_parses_as_the_gateway_reads_it(role: str) -> None:
    template = load_template(REPO_ADAPTERS_DIR / role / "prompt.md")
    assert template.system and "<!--" not in template.system
    assert template.user.strip() == SLOT
    messages = template.render("Waht is teh capitol of France?")
    assert messages[-1] == {"role": "user", "content": "Waht is teh capitol of France?"}
    assert messages[0]["role"] == "system"


def test_describer_prompt_states_its_limits() -> None:
    system = load_template(REPO_ADAPTERS_DIR / "describer" / "prompt.md").system or ""
    assert "3" in system and "120 tokens" in system and "nothing" in system


def test_manifest_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no manifest for role 'cleaner'"):
        load_manifest(tmp_path, "cleaner")
    with pytest.raises(ManifestError, match=r"lora: Field required"):
        parse_manifest({"name": "x", "role": "x", "training": {"dataset": "d", "samples": 1},
                        "variants": {"3b": {"base_model": "a/b", "weights": "c"}}}, "m.yaml")
    (tmp_path / "cleaner").mkdir()
    (tmp_path / "cleaner" / "adapter.yaml").write_text(yaml.safe_dump(
        {"name": "describer", "role": "describer", "training": {"dataset": "d", "samples": 1}, "lora": {"rank": 8},
         "variants": {"3b": {"base_model": "a/b", "weights": "c"}}}))
    with pytest.raises(ManifestError, match="must match its directory 'cleaner'"):
        load_manifest(tmp_path, "cleaner")


def test_discover_adapters(tmp_path: Path) -> None:
    for name in ("zeta", "describer", "cleaner"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter.yaml").write_text("{}")
    (tmp_path / "notes").mkdir()
    assert discover_adapters(tmp_path, ROLES) == ("cleaner", "describer", "zeta")
    assert discover_adapters(REPO_ADAPTERS_DIR, ROLES) == ROLES


def test_refs() -> None:
    assert looks_like_local_path("/a") and looks_like_local_path("./a") and looks_like_local_path("~/a")
    assert not looks_like_local_path("meta-llama/Llama-3.2-3B-Instruct")
    base = Path("/etc/mpr")
    assert resolve_ref("meta-llama/Llama-3.2-3B-Instruct", base) == "meta-llama/Llama-3.2-3B-Instruct"
    assert resolve_ref("../models/x", base) == "/etc/models/x"
    assert resolve_ref("tiny-llama", base) == "/etc/mpr/tiny-llama"


def test_example_worker_config_is_valid() -> None:
    config, base_dir = load_worker_config(EXAMPLE)
    assert base_dir == EXAMPLE.parent
    assert config.adapters_dir == REPO_ADAPTERS_DIR
    assert config.ports == {"cleaner": 8002, "describer": 8003, "paraphraser": 8004}
    assert config.cpu.dtype == "float32" and config.restart.max_delay_s == 60


def test_worker_config_errors(tmp_path: Path) -> None:
    with pytest.raises(WorkerConfigError, match="gpu.gpu_memory_utilization"):
        parse_worker_config({"gpu": {"gpu_memory_utilization": 2}}, tmp_path, "w.yaml")
    with pytest.raises(WorkerConfigError, match="cpu.dtype"):
        parse_worker_config({"cpu": {"dtype": "float16"}}, tmp_path, "w.yaml")
    with pytest.raises(WorkerConfigError, match="unknown_key"):
        parse_worker_config({"unknown_key": 1}, tmp_path, "w.yaml")
    with pytest.raises(WorkerConfigError, match="cannot read"):
        load_worker_config(tmp_path / "missing.yaml")
    assert parse_worker_config(None, tmp_path, "w.yaml").size == "3b"
    assert parse_worker_config({"adapters_dir": "x"}, tmp_path, "w.yaml").adapters_dir == tmp_path / "x"


def test_worker_config_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("size: 8b\n")
    monkeypatch.setenv("MPR_WORKER_CONFIG", str(path))
    assert load_worker_config(None)[0].size == "8b"


def test_adapters_dir_default_follows_env_then_checkout(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    from worker_launch.config import REPO_ADAPTERS_DIR, default_adapters_dir

    monkeypatch.delenv("MPR_ADAPTERS_DIR", raising=False)
    assert default_adapters_dir() == REPO_ADAPTERS_DIR
    monkeypatch.setenv("MPR_ADAPTERS_DIR", str(tmp_path))
    assert default_adapters_dir() == tmp_path.resolve()
