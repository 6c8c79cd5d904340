"""Random LoRA adapters in PEFT's on-disk format (``adapter_config.json`` + ``adapter_model.safetensors``)."""

from __future__ import annotations

import numpy as np

from worker_launch.testmodel.llama import LlamaShape

_MODULE_PATHS = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
                 "o_proj": "self_attn.o_proj", "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
                 "down_proj": "mlp.down_proj"}


def adapter_config(base_model: str, rank: int, alpha: int, target_modules: tuple[str, ...]) -> dict[str, object]:
    """PEFT ``adapter_config.json`` for a causal-LM LoRA."""
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": list(target_modules),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "modules_to_save": None,
        "use_rslora": False,
        "use_dora": False,
    }


def lora_weights(shape: LlamaShape, rank: int, target_modules: tuple[str, ...],
                 rng: np.random.Generator, std: float = 0.05) -> dict[str, np.ndarray]:
    """Random ``lora_A``/``lora_B`` matrices (B non-zero, so each adapter really changes the output)."""
    proj = shape.proj_shapes()
    tensors: dict[str, np.ndarray] = {}
    for layer in range(shape.num_layers):
        for module in target_modules:
            path = _MODULE_PATHS[module]
            out_f, in_f = proj[path]
            prefix = f"base_model.model.model.layers.{layer}.{path}"
            tensors[f"{prefix}.lora_A.weight"] = rng.normal(0.0, std, size=(rank, in_f)).astype(np.float32)
            tensors[f"{prefix}.lora_B.weight"] = rng.normal(0.0, std, size=(out_f, rank)).astype(np.float32)
    return tensors
