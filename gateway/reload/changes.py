"""Which changes a reload cannot apply: they take effect at the next restart."""

from __future__ import annotations

from gateway.config.models import GatewayConfig

# read once when the process starts: the listening socket, the process count, uvicorn's shutdown
# timings, Litestar's body limit for its own routes, and the tracer / audit log / log level
RESTART_ONLY = (
    ("server", "host"),
    ("server", "port"),
    ("server", "workers"),
    ("server", "shutdown_grace_s"),
    ("server", "drain_delay_s"),
    ("telemetry", None),
)


def restart_only_changes(old: GatewayConfig, new: GatewayConfig) -> list[str]:
    """The keys of :data:`RESTART_ONLY` whose value differs between ``old`` and ``new``."""
    changed = []
    for section, key in RESTART_ONLY:
        before, after = getattr(old, section), getattr(new, section)
        if key is not None:
            before, after = getattr(before, key), getattr(after, key)
        if before != after:
            changed.append(section if key is None else f"{section}.{key}")
    return changed
