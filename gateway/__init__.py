"""MPR gateway: an OpenAI-compatible proxy that refines prompts through LoRA specialists."""

__version__ = "0.1.0"
