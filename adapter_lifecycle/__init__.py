"""The LoRA adapters' lifecycle: train, evaluate and version the specialists.

``lora_adapters/<role>/`` holds the manifests (``adapter.yaml``) and prompts this package reads and
writes; ``worker_launch`` serves what it produces. Importing this package is cheap and needs
neither torch nor transformers: only :mod:`adapter_lifecycle.trainer` does, and it runs under the
vLLM interpreter.
"""

__all__ = ["ROLES"]

ROLES: tuple[str, ...] = ("cleaner", "describer", "paraphraser")
