"""Where the running config came from: the routes file's path, a short hash of its bytes and when
it was loaded (``x-mpr-config``, ``/ready``'s ``config``, the reload log line)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.config.loader import load_config_bytes, read_config_bytes
from gateway.config.models import GatewayConfig

HASH_CHARS = 12


def config_hash(raw: bytes) -> str:
    """The first 12 hex digits of the SHA-256 of the file's bytes."""
    return hashlib.sha256(raw).hexdigest()[:HASH_CHARS]


@dataclass(frozen=True)
class ConfigSource:
    """``hash`` of the file's bytes, ``loaded_at`` (Unix time), ``source`` (the path, or a label
    for a config built in code)."""

    hash: str
    loaded_at: float
    source: str

    def as_dict(self) -> dict[str, object]:
        return {"hash": self.hash, "loaded_at": round(self.loaded_at, 3), "source": self.source}

    @classmethod
    def of_config(cls, config: GatewayConfig, label: str = "<in-process>") -> ConfigSource:
        """For a config that did not come from a file: the hash of its JSON form."""
        return cls(config_hash(config.model_dump_json().encode()), time.time(), label)


def load_source(path: str | Path, env: Mapping[str, str] | None = None) -> tuple[GatewayConfig, ConfigSource]:
    """Read the routes file once: the validated config and its :class:`ConfigSource`. Raises
    :class:`~gateway.config.ConfigError` with every problem."""
    path = Path(path)
    raw = read_config_bytes(path)
    config = load_config_bytes(raw, path, env)
    return config, ConfigSource(config_hash(raw), time.time(), str(path.resolve()))
