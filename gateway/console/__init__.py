"""Operator and user consoles: ``mpr-gateway status`` and ``mpr-gateway chat``."""
