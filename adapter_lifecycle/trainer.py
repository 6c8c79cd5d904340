"""LoRA fine-tuning with peft: runs under the vLLM interpreter (torch, transformers, peft).

    python -m adapter_lifecycle.trainer JOB.json

``mpr-adapters train`` writes JOB.json and the rendered samples (``{messages, answer}`` JSON
lines) and runs this module. Each sample is the base model's chat template over the gateway's
messages plus the answer as the assistant turn; the loss covers the answer tokens (and the
template's end-of-turn token) only. The batch order is a pure function of the seed and the step,
so ``resume`` from a checkpoint continues exactly where the run stopped.

Layout of ``work``: ``checkpoints/step-N/`` (adapter, optimizer, RNG and step), ``log.jsonl``
(one line per logged step: loss, eval_loss, tokens/s) and ``result.json`` at the end. The final
adapter (``adapter_config.json`` + ``adapter_model.safetensors``, nothing else) goes to ``out``.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

IGNORE = -100


def encode(tokenizer: Any, row: dict[str, Any], max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels): the chat template over messages + answer; labels only on the answer."""
    messages = row["messages"]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": row["answer"]}],
                                         tokenize=False, add_generation_prompt=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if full.startswith(prompt):
        answer_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
    else:  # a template that renders the last turn differently: answer + end of sequence
        answer_ids = tokenizer(row["answer"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt_ids + answer_ids)[:max_length]
    labels = ([IGNORE] * len(prompt_ids) + answer_ids)[:max_length]
    return ids, labels


def read_rows(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """The sample indices of ``step`` (0-based): epochs of seeded permutations, laid end to end."""
    out = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(position, n)
        order = list(range(n))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        out.append(order[offset])
    return out


def collate(encoded: list[tuple[list[int], list[int]]], pad_id: int, device: str) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, (x, y) in enumerate(encoded):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


def token_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over the answer tokens, and how many there were."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    shift_logits, shift_labels = logits[:, :-1, :], batch["labels"][:, 1:]
    count = int((shift_labels != IGNORE).sum())
    loss = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)),
                                             shift_labels.reshape(-1), ignore_index=IGNORE, reduction="sum")
    return loss / max(count, 1), count


@torch.no_grad()
def evaluate(model: Any, encoded: list[tuple[list[int], list[int]]], pad_id: int, device: str, batch_size: int) -> float:
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(encoded), batch_size):
        loss, n = token_loss(model, collate(encoded[i: i + batch_size], pad_id, device))
        total += float(loss) * n
        count += n
    model.train()
    return total / max(count, 1)


def lr_at(step: int, job: dict[str, Any]) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    peak, warmup, total = job["learning_rate"], job["warmup_steps"], job["max_steps"]
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def latest_checkpoint(work: Path) -> Path | None:
    found = [(int(p.name.split("-", 1)[1]), p) for p in (work / "checkpoints").glob("step-*")
             if (p / "state.json").exists() and p.name.split("-", 1)[1].isdigit()]
    return max(found)[1] if found else None


def lora_state(model: Any) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict  # noqa: PLC0415

    return {k: v.detach().to("cpu").contiguous() for k, v in get_peft_model_state_dict(model).items()}


def save_checkpoint(work: Path, step: int, model: Any, optimizer: Any, job: dict[str, Any], history: list[Any]) -> Path:
    final = work / "checkpoints" / f"step-{step}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(lora_state(model), str(tmp / "lora.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
               tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "base": job["base"], "history": history}))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    keep = job.get("keep_checkpoints", 2)
    steps = sorted(int(p.name.split("-", 1)[1]) for p in (work / "checkpoints").glob("step-*") if p.name[5:].isdigit())
    for old in steps[:-keep]:
        shutil.rmtree(work / "checkpoints" / f"step-{old}", ignore_errors=True)
    return final


def write_adapter(model: Any, out: Path, base_name: str) -> None:
    """``adapter_config.json`` + ``adapter_model.safetensors`` only (what vLLM serves)."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True, save_embedding_layers=False)
    for extra in tmp.iterdir():
        if extra.name not in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.rmtree(extra) if extra.is_dir() else extra.unlink()
    config = json.loads((tmp / "adapter_config.json").read_text())
    config["inference_mode"] = True
    config["base_model_name_or_path"] = base_name  # the id the record and verify-adapters know
    (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def progress(total: int, initial: int) -> Any:
    try:
        from tqdm import tqdm  # noqa: PLC0415
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc="train", unit="step", file=sys.stderr, mininterval=1.0,
                dynamic_ncols=True)


def train(job: dict[str, Any]) -> dict[str, Any]:
    work, out = Path(job["work"]), Path(job["out"])
    work.mkdir(parents=True, exist_ok=True)
    device = job["device"]
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    seed = job["seed"]
    random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(device == "cpu", warn_only=True)
    threads = job.get("threads")
    if threads:
        torch.set_num_threads(threads)

    tokenizer = AutoTokenizer.from_pretrained(job["base"])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train_rows, eval_rows = read_rows(job["train_file"]), read_rows(job["eval_file"])
    train_enc = [encode(tokenizer, r, job["max_length"]) for r in train_rows]
    eval_enc = [encode(tokenizer, r, job["max_length"]) for r in eval_rows]

    model = AutoModelForCausalLM.from_pretrained(job["base"], dtype=dtype)
    model.to(device)
    lora = job["lora"]
    model = get_peft_model(model, LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                                             target_modules=lora["target_modules"], bias="none",
                                             task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=job["learning_rate"], weight_decay=0.0)

    step, history = 0, []
    checkpoint = latest_checkpoint(work) if job.get("resume") else None
    if job.get("resume") and checkpoint is None:
        print(f"mpr-adapters: --resume: no checkpoint under {work / 'checkpoints'}; starting from step 0",
              file=sys.stderr)
    if checkpoint is not None:
        state = json.loads((checkpoint / "state.json").read_text())
        set_peft_model_state_dict(model, load_file(str(checkpoint / "lora.safetensors"), device=device))
        saved = torch.load(checkpoint / "optimizer.pt", weights_only=False)
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
        if saved.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        step, history = state["step"], state["history"]
        print(f"mpr-adapters: resumed from {checkpoint} (step {step})", file=sys.stderr, flush=True)

    log = (work / "log.jsonl").open("a", encoding="utf-8")

    def record(entry: dict[str, Any]) -> None:
        history.append(entry)
        log.write(json.dumps(entry) + "\n")
        log.flush()

    if step == 0:
        record({"step": 0, "eval_loss": evaluate(model, eval_enc, pad_id, device, job["batch_size"])})
    crash_at = int(os.environ.get("MPR_TRAIN_CRASH_AT_STEP", "0"))  # tests: a hard crash, no cleanup
    bar = progress(job["max_steps"], step)
    started, tokens, window_loss = time.monotonic(), 0, []
    while step < job["max_steps"]:
        batch = collate([train_enc[i] for i in batch_indices(len(train_enc), job["batch_size"], step, seed)],
                        pad_id, device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, job)
        loss, count = token_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens += int(batch["attention_mask"].sum())
        window_loss.append(loss.item())
        rate = tokens / max(time.monotonic() - started, 1e-9)
        if bar is not None:
            bar.set_postfix(loss=f"{window_loss[-1]:.3f}", tok_s=f"{rate:.0f}", refresh=False)
            bar.update(1)
        entry: dict[str, Any] = {"step": step, "loss": sum(window_loss) / len(window_loss), "tokens_per_s": round(rate, 1)}
        window_loss = []
        if step % job["eval_every"] == 0 or step == job["max_steps"]:
            entry["eval_loss"] = evaluate(model, eval_enc, pad_id, device, job["batch_size"])
            if bar is not None:
                bar.write(f"step {step}: loss {entry['loss']:.4f}  eval_loss {entry['eval_loss']:.4f}  "
                          f"{rate:.0f} tokens/s")
        record(entry)
        if step % job["save_every"] == 0 or step == job["max_steps"]:
            save_checkpoint(work, step, model, optimizer, job, history)
        if crash_at and step == crash_at:
            log.close()
            os._exit(75)
    if bar is not None:
        bar.close()
    log.close()
    write_adapter(model, out, job["base_name"])
    evals = [h for h in history if "eval_loss" in h]
    result = {"steps": step, "first_eval_loss": evals[0]["eval_loss"] if evals else None,
              "final_eval_loss": evals[-1]["eval_loss"] if evals else None,
              "final_loss": next((h["loss"] for h in reversed(history) if "loss" in h), None),
              "train_samples": len(train_rows), "eval_samples": len(eval_rows),
              "seconds": round(time.monotonic() - started, 2), "device": device, "dtype": str(dtype).split(".")[-1]}
    (work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m adapter_lifecycle.trainer JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    result = train(job)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
