"""Prompt refinement: skip gate, stage fan-out, drift-controlled merge."""
