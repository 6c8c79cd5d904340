"""``mpr-adapters train`` on the tiny test model: the loss falls, checkpoints resume, bad input is refused.

Marked ``vllm``: training runs under the vLLM environment's torch/transformers/peft (.venv-vllm),
which ``make test-fast`` does not need."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.numpy import load_file

from adapter_lifecycle.versions import load_versions, weights_digest
from tests.adapter_lifecycle.conftest import Trained, run_cli

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]


def test_training_lowers_the_held_back_loss_and_writes_a_servable_adapter(trained: Trained) -> None:
    result = trained.result
    assert result["steps"] == 40 and result["device"] == "cpu" and result["dtype"] == "float32"
    assert result["final_eval_loss"] < result["first_eval_loss"] - 0.05, result
    assert sorted(p.name for p in trained.out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((trained.out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["base_model_name_or_path"] == "mpr-test/tiny-llama"
    assert config["r"] == 8 and config["lora_alpha"] == 16 and sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    tensors = load_file(str(trained.out / "adapter_model.safetensors"))
    assert any(".lora_B." in name and abs(t).sum() > 0 for name, t in tensors.items())  # B moved off its zero init
    log = [json.loads(line) for line in (Path(str(trained.out) + ".train") / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "eval_loss" in e] == [0, 10, 20, 30, 40]
    assert all(e["tokens_per_s"] > 0 for e in log if "loss" in e)


def test_training_records_a_version(trained: Trained) -> None:
    records = load_versions(trained.adapters_dir / "cleaner")
    first = records.get(1)
    assert first.name == "cleaner@1" and first.base_model == "mpr-test/tiny-llama"
    assert records.weights_path(first) == trained.out.resolve()
    assert first.sha256 == weights_digest(trained.out)
    assert first.data[0]["spec"] == trained.data and first.data[0]["samples"] == 20
    assert len(first.data[0]["sha256"]) == 64
    assert first.training["seed"] == 7 and first.training["max_steps"] == 40
    assert first.training["result"]["final_eval_loss"] == trained.result["final_eval_loss"]
    assert records.current is None  # a new version is not served until promoted (or --current)


def test_an_interrupted_training_resumes_from_its_last_checkpoint(trained: Trained, tmp_path: Path) -> None:
    out = tmp_path / "cleaner"
    crashed = run_cli(*trained.train_args(out, "--no-record"), env={"MPR_TRAIN_CRASH_AT_STEP": "25"})
    assert crashed.returncode == 1 and "--resume" in crashed.stderr
    checkpoints = sorted(p.name for p in (tmp_path / "cleaner.train" / "checkpoints").iterdir())
    assert checkpoints == ["step-10", "step-20"] and not out.exists()

    resumed = run_cli(*trained.train_args(out, "--no-record", "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr and "step-20 (step 20)" in resumed.stderr
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["steps"] == 40
    # the same seed, data order, optimizer and RNG state: the uninterrupted run's weights
    ours, theirs = load_file(str(out / "adapter_model.safetensors")), load_file(str(trained.out / "adapter_model.safetensors"))
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert abs(ours[name] - theirs[name]).max() < 1e-4, name


def test_resume_refuses_checkpoints_of_another_base_model(trained: Trained, tmp_path: Path) -> None:
    out = tmp_path / "cleaner"
    work = tmp_path / "cleaner.train"
    work.mkdir()
    (work / "job.json").write_text(json.dumps({"base_name": "meta-llama/Llama-3.2-3B-Instruct"}))
    proc = run_cli(*trained.train_args(out, "--no-record", "--resume"))
    assert proc.returncode == 2
    assert "trained on 'meta-llama/Llama-3.2-3B-Instruct', not 'mpr-test/tiny-llama'" in proc.stderr


def test_a_malformed_data_line_is_reported_with_file_and_line(trained: Trained, tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"input": "helo there", "output": "hello there"}\n'
                    '{"input": "teh cat", "output": "the cat"}\n'
                    '{"input": "a dog", "output": "a dog"\n')
    args = trained.train_args(tmp_path / "out", "--no-record")
    args[args.index("--data") + 1] = f"jsonl:{data}"
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert f"{data}:3: not valid JSON" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_evaluate_refuses_a_base_model_that_does_not_match_the_record(trained: Trained, tmp_path: Path) -> None:
    other = tmp_path / "Llama-3.2-3B-Instruct"
    other.mkdir()
    proc = run_cli("--adapters-dir", str(trained.adapters_dir), "evaluate", "cleaner", str(trained.out),
                   "--base", str(other), "--device", "cpu")
    assert proc.returncode == 2
    assert "refused: cleaner@1 was trained on 'mpr-test/tiny-llama'" in proc.stderr
