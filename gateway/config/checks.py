"""Warnings about a valid config that probably does not do what its author meant (pure).

``mpr-gateway check-config`` prints them after ``OK``; they never refuse a file.
"""

from __future__ import annotations

from gateway.config.allowlist import exposure_warnings
from gateway.config.models import GatewayConfig, Role


def config_warnings(config: GatewayConfig) -> list[tuple[str, str]]:
    """(key path, message) for each refinement stage that can never run: it is listed under
    ``refinement.stages`` (every role by default) but has no adapter, and is not the built-in cleaner;
    and for each opened pass-through path that reaches a management or account route."""
    warnings = []
    for i, role in enumerate(config.refinement.stages):
        if config.adapters.get(role) is not None:
            continue
        if role == Role.CLEANER and config.refinement.builtin_cleaner != "off":
            continue  # the built-in cleaner serves it
        warnings.append(
            (
                f"refinement.stages[{i}]",
                f"{role.value} has no adapter (adapters.{role.value} is not set): the stage never runs "
                "(registered workers only join declared adapters)",
            )
        )
    return warnings + _exposure(config)


def _exposure(config: GatewayConfig) -> list[tuple[str, str]]:
    """Opened pass-through paths that reach management or account routes (:mod:`.allowlist`)."""
    targets = [(f"targets[{i}].passthrough", t.passthrough) for i, t in enumerate(config.targets) if t.passthrough]
    keys = [(f"server.keys[{j}].routes", k.routes) for j, k in enumerate(config.server.keys) if k.routes]
    warnings = exposure_warnings(targets, keys)
    tenants = bool(config.server.keys) or config.server.keys_file is not None
    if tenants and not config.server.protect_ops_endpoints:
        warnings.append(
            (
                "server.protect_ops_endpoints",
                "tenant keys are configured but /metrics and /ready are open to anyone: every tenant's name and "
                "token usage, every target and endpoint URL (set it to true; operators then use an admin key)",
            )
        )
    return warnings
