"""Offline, deterministic tiny Llama plus random LoRA adapters, in the real file formats.

Random weights write nonsense on purpose: the end-to-end test relies on the gateway's drift control
rejecting it. Nothing here needs torch or peft; tensors are written with numpy + safetensors.
"""

from worker_launch.testmodel.build import TestModelSpec, build_test_model

__all__ = ["TestModelSpec", "build_test_model"]
