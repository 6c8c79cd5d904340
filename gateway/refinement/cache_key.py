"""The refinement cache's key (pure): a hash of the prompt and of everything that shapes its outcome.

The key covers the caller's partition (a named tenant's own, or the shared one of bare keys:
:mod:`gateway.tenants.partition`, so one tenant's prompts never become another's hits), the exact prompt text (no normalisation: a cached refined text must fit the prompt
it replaces character for character), whether the skip gate runs, the stages that run and each
one's version (its adapter model, a hash of its prompt template, its call parameters), the merge
settings (drift bounds, describer settings), the skip-gate settings, the gateway's version and
:data:`FORMAT`. It is a BLAKE2b digest in hex, so it never contains the prompt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import msgspec

from gateway.config.models import ALL_ROLES, RefinementConfig, Role

FORMAT = 2
"""Bumped when the key's inputs or the stored value's layout change (old entries are then unused)."""
PREFIX = "refine:"


def _digest(value: Any) -> str:
    return hashlib.blake2b(msgspec.json.encode(value), digest_size=16).hexdigest()


def gateway_version() -> str:
    """The installed gateway's version (code changes between releases change outcomes)."""
    try:
        return version("mpr-gateway")
    except PackageNotFoundError:
        return "unknown"


def stage_fingerprint(backend: object) -> str:
    """A stage backend's version: its ``fingerprint`` when it has one, else its class's name."""
    fingerprint = getattr(backend, "fingerprint", None)
    if isinstance(fingerprint, str):
        return fingerprint
    kind = type(backend)
    return f"{kind.__module__}.{kind.__qualname__}"


def settings_digest(config: RefinementConfig, release: str) -> str:
    """A hash of the settings that shape every outcome: skip gate, drift bounds, describer, release."""
    return _digest(
        [
            FORMAT,
            release,
            config.skip_gate.model_dump(mode="json"),
            config.drift.model_dump(mode="json"),
            config.describer.model_dump(mode="json"),
        ]
    )


def cache_key(
    text: str, roles: Sequence[Role], use_gate: bool, fingerprints: Mapping[Role, str], settings: str, partition: str = "shared"
) -> str:
    """The cache key of refining ``text`` with ``roles`` (any order) under ``settings``, for a
    caller of ``partition``."""
    ordered = [role for role in ALL_ROLES if role in roles]
    stages = [[role.value, fingerprints.get(role, "")] for role in ordered]
    return PREFIX + _digest([settings, partition, use_gate, stages, text])
