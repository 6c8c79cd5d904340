"""Worker launcher: runs vLLM with a node's LoRA specialists (cleaner, describer, paraphraser)."""

__all__ = ["ROLES", "DEFAULT_PORTS"]

ROLES: tuple[str, ...] = ("cleaner", "describer", "paraphraser")
"""The built-in refinement roles, in the gateway's order."""

DEFAULT_PORTS: dict[str, int] = {"cleaner": 8002, "describer": 8003, "paraphraser": 8004}
"""Port each role's worker listens on by default (the seed deployment's layout)."""
