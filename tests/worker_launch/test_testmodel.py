"""``make-test-model``: deterministic, real file formats, consistent shapes, passes verification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open
from tokenizers import Tokenizer

from worker_launch import ROLES
from worker_launch.cli import main
from worker_launch.testmodel import build_test_model
from worker_launch.testmodel.tokenizer import CHAT_TEMPLATE


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tm")
    build_test_model(out)
    return out


def _tensors(path: Path) -> dict[str, tuple[int, ...]]:
    with safe_open(str(path), "np") as fh:
        return {key: tuple(fh.get_slice(key).get_shape()) for key in fh.keys()}


def test_layout(model_dir: Path) -> None:
    base = model_dir / "tiny-llama"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (base / name).is_file(), name
    for role in ROLES:
        assert (model_dir / "adapters" / role / "adapter_model.safetensors").is_file()
        assert (model_dir / "lora_adapters" / role / "adapter.yaml").is_file()
    assert (model_dir / "worker.yaml").is_file()


def test_deterministic(model_dir: Path, tmp_path: Path) -> None:
    build_test_model(tmp_path)
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        assert (tmp_path / path.relative_to(model_dir)).read_bytes() == path.read_bytes(), path


def test_weights_match_the_config(model_dir: Path) -> None:
    config = json.loads((model_dir / "tiny-llama" / "config.json").read_text())
    h, v, i = config["hidden_size"], config["vocab_size"], config["intermediate_size"]
    kv = config["num_key_value_heads"] * config["head_dim"]
    assert config["num_attention_heads"] * config["head_dim"] == h
    shapes = _tensors(model_dir / "tiny-llama" / "model.safetensors")
    assert shapes["model.embed_tokens.weight"] == (v, h) and shapes["lm_head.weight"] == (v, h)
    assert shapes["model.layers.1.self_attn.k_proj.weight"] == (kv, h)
    assert shapes["model.layers.0.mlp.down_proj.weight"] == (h, i)
    assert len(shapes) == 3 + config["num_hidden_layers"] * 9


def test_lora_is_peft_format(model_dir: Path) -> None:
    config = json.loads((model_dir / "adapters" / "cleaner" / "adapter_config.json").read_text())
    assert (config["peft_type"], config["task_type"], config["r"]) == ("LORA", "CAUSAL_LM", 8)
    shapes = _tensors(model_dir / "adapters" / "cleaner" / "adapter_model.safetensors")
    assert shapes["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"] == (8, 128)
    assert shapes["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"] == (64, 8)
    cleaner = (model_dir / "adapters" / "cleaner" / "adapter_model.safetensors").read_bytes()
    assert cleaner != (model_dir / "adapters" / "describer" / "adapter_model.safetensors").read_bytes()


def test_tokenizer_and_chat_template(model_dir: Path) -> None:
    tokenizer = Tokenizer.from_file(str(model_dir / "tiny-llama" / "tokenizer.json"))
    text = "Waht is teh capitol of France? Ünïcode ✓"
    assert tokenizer.decode(tokenizer.encode(text).ids) == text, "byte-level BPE round-trips any text"
    assert 1000 < tokenizer.get_vocab_size() <= 1536
    config = json.loads((model_dir / "tiny-llama" / "tokenizer_config.json").read_text())
    assert config["chat_template"] == CHAT_TEMPLATE
    for token in ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"):
        assert token in CHAT_TEMPLATE or token == config["bos_token"]
        assert tokenizer.token_to_id(token) is not None, f"{token} is a single special token"
    eos = json.loads((model_dir / "tiny-llama" / "config.json").read_text())["eos_token_id"]
    assert tokenizer.id_to_token(eos) == "<|eot_id|>"


def test_cli_builds_and_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["make-test-model", str(tmp_path)]) == 0
    assert main(["verify-adapters", "--config", str(tmp_path / "worker.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.count("OK ") == 3
