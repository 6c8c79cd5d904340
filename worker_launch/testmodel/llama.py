"""Tiny Llama architecture: its ``config.json`` and random float32 weights with HF tensor names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LlamaShape:
    """Sizes of the tiny model (defaults are known to load in vLLM's CPU backend)."""

    vocab_size: int
    hidden_size: int = 128
    intermediate_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    max_positions: int = 2048

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def proj_shapes(self) -> dict[str, tuple[int, int]]:
        """``(out_features, in_features)`` of every linear layer in one decoder layer."""
        h, i, q, kv = self.hidden_size, self.intermediate_size, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        return {
            "self_attn.q_proj": (q, h),
            "self_attn.k_proj": (kv, h),
            "self_attn.v_proj": (kv, h),
            "self_attn.o_proj": (h, q),
            "mlp.gate_proj": (i, h),
            "mlp.up_proj": (i, h),
            "mlp.down_proj": (h, i),
        }


def llama_config(shape: LlamaShape, bos_id: int, eos_id: int, pad_id: int) -> dict[str, object]:
    """The Hugging Face ``config.json`` of a ``LlamaForCausalLM``."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": shape.vocab_size,
        "hidden_size": shape.hidden_size,
        "intermediate_size": shape.intermediate_size,
        "num_hidden_layers": shape.num_layers,
        "num_attention_heads": shape.num_heads,
        "num_key_value_heads": shape.num_kv_heads,
        "head_dim": shape.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": shape.max_positions,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "torch_dtype": "float32",
        "initializer_range": 0.02,
    }


def generation_config(bos_id: int, eos_id: int, pad_id: int) -> dict[str, object]:
    """``generation_config.json``: token ids only, no sampling defaults."""
    return {"bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": pad_id}


def llama_weights(shape: LlamaShape, rng: np.random.Generator, std: float = 0.02) -> dict[str, np.ndarray]:
    """Random float32 weights named as ``transformers`` saves a ``LlamaForCausalLM``."""

    def normal(*dims: int) -> np.ndarray:
        return rng.normal(0.0, std, size=dims).astype(np.float32)

    ones = np.ones(shape.hidden_size, dtype=np.float32)
    tensors: dict[str, np.ndarray] = {"model.embed_tokens.weight": normal(shape.vocab_size, shape.hidden_size)}
    for layer in range(shape.num_layers):
        prefix = f"model.layers.{layer}"
        tensors[f"{prefix}.input_layernorm.weight"] = ones.copy()
        tensors[f"{prefix}.post_attention_layernorm.weight"] = ones.copy()
        for name, (out_f, in_f) in shape.proj_shapes().items():
            tensors[f"{prefix}.{name}.weight"] = normal(out_f, in_f)
    tensors["model.norm.weight"] = ones.copy()
    tensors["lm_head.weight"] = normal(shape.vocab_size, shape.hidden_size)
    return tensors
