"""Adapter verification: the pure checks and the reads from disk, on real PEFT-format files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from worker_launch.plan import LoraModule
from worker_launch.verify import (
    AdapterFiles,
    base_models_match,
    check_adapter,
    hf_cache_dir,
    locate,
    read_adapter_dir,
    safetensors_problem,
)

BASE = "meta-llama/Llama-3.2-3B-Instruct"
GOOD_CONFIG = {"peft_type": "LORA", "base_model_name_or_path": BASE, "r": 16}


def lora(path: str = "/models/cleaner", rank: int = 64) -> LoraModule:
    return LoraModule("cleaner", "cleaner", path, rank)


def files(config: dict | None = GOOD_CONFIG, weights: dict | None = None, directory: str | None = "/models/cleaner",
          config_error: str | None = None) -> AdapterFiles:
    return AdapterFiles(Path(directory) if directory else None, config, config_error,
                        {"adapter_model.safetensors": None} if weights is None else weights)


def messages(findings) -> list[str]:
    return [f.message for f in findings if f.level == "error"]


@pytest.mark.parametrize(("declared", "expected", "match"), [
    (BASE, BASE, True),
    ("/home/hf/Llama-3.2-3B-Instruct/", BASE, True),
    ("unsloth/llama-3.2-3b-instruct", BASE, True),
    ("meta-llama/Llama-3.1-8B-Instruct", BASE, False),
    ("mpr-test/tiny-llama", "/tmp/x/tiny-llama", True),
])
def test_base_models_match(declared: str, expected: str, match: bool) -> None:
    assert base_models_match(declared, expected) is match


def test_good_adapter_passes() -> None:
    assert check_adapter(lora(), BASE, 64, files()) == []


def test_wrong_base_model() -> None:
    found = messages(check_adapter(lora(), "meta-llama/Llama-3.1-8B-Instruct", 64, files()))
    assert found == [f"adapter was trained on {BASE!r} but this worker serves 'meta-llama/Llama-3.1-8B-Instruct'"]


def test_rank_above_manifest_and_vllm_limits() -> None:
    config = {**GOOD_CONFIG, "r": 128}
    found = messages(check_adapter(lora(rank=64), BASE, 64, files(config)))
    assert any("exceeds the manifest's rank 64" in m for m in found)
    assert any("exceeds --max-lora-rank 64" in m for m in found)
    assert messages(check_adapter(lora(rank=64), BASE, 64, files({**GOOD_CONFIG, "r": "8"})))


def test_missing_pieces() -> None:
    assert messages(check_adapter(lora(), BASE, 64, files(None, config_error="missing"))) == [
        "/models/cleaner/adapter_config.json: missing"]
    assert "no usable weights" in messages(check_adapter(lora(), BASE, 64, files(weights={})))[0]
    bad = messages(check_adapter(lora(), BASE, 64, files(weights={"adapter_model.safetensors": "truncated tensor data"})))
    assert "truncated tensor data" in bad[0]
    assert "peft_type" in messages(check_adapter(lora(), BASE, 64, files({**GOOD_CONFIG, "peft_type": "IA3"})))[0]
    no_base = {k: v for k, v in GOOD_CONFIG.items() if k != "base_model_name_or_path"}
    assert "no base_model_name_or_path" in messages(check_adapter(lora(), BASE, 64, files(no_base)))[0]


def test_missing_directory_local_is_an_error_hub_id_a_warning() -> None:
    local = check_adapter(lora("/models/none"), BASE, 64, files(directory=None))
    assert [f.level for f in local] == ["error"]
    hub = check_adapter(lora("org/cleaner-lora"), BASE, 64, files(directory=None))
    assert [f.level for f in hub] == ["warning"] and "huggingface-cli download org/cleaner-lora" in hub[0].message


def _write_adapter(directory: Path, config: dict, tensors: int = 2) -> Path:
    directory.mkdir(parents=True)
    (directory / "adapter_config.json").write_text(json.dumps(config))
    weights = {f"base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight": np.ones((8, 4), np.float32)
               for i in range(tensors)}
    save_file(weights, str(directory / "adapter_model.safetensors"))
    return directory


def test_safetensors_problem_on_real_files(tmp_path: Path) -> None:
    good = _write_adapter(tmp_path / "a", GOOD_CONFIG) / "adapter_model.safetensors"
    assert safetensors_problem(good) is None
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(good.read_bytes()[:-10])
    assert safetensors_problem(truncated) == "truncated tensor data"
    tiny = tmp_path / "x.safetensors"
    tiny.write_bytes(b"\x01")
    assert safetensors_problem(tiny) == "truncated header"
    empty = tmp_path / "e.safetensors"
    save_file({}, str(empty))
    assert safetensors_problem(empty) == "contains no tensors"


def test_read_adapter_dir(tmp_path: Path) -> None:
    directory = _write_adapter(tmp_path / "cleaner", GOOD_CONFIG)
    read = read_adapter_dir(str(directory), env={})
    assert read.directory == directory and read.config == GOOD_CONFIG
    assert read.weights == {"adapter_model.safetensors": None}
    assert check_adapter(lora(str(directory)), BASE, 64, read) == []
    (directory / "adapter_config.json").write_text("{not json")
    assert "unreadable" in (read_adapter_dir(str(directory), env={}).config_error or "")


def test_hub_ids_are_found_in_the_hf_cache(tmp_path: Path) -> None:
    env = {"HF_HOME": str(tmp_path / "hf")}
    assert hf_cache_dir(env) == tmp_path / "hf" / "hub"
    assert hf_cache_dir({"HF_HUB_CACHE": "/c"}) == Path("/c")
    assert locate("org/cleaner-lora", env) is None
    snapshot = _write_adapter(tmp_path / "hf" / "hub" / "models--org--cleaner-lora" / "snapshots" / "abc123", GOOD_CONFIG)
    assert locate("org/cleaner-lora", env) == snapshot
    assert read_adapter_dir("org/cleaner-lora", env).config == GOOD_CONFIG
