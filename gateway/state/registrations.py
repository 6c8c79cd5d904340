"""Where a gateway process without Redis keeps worker registrations (node → record bytes, each
with a TTL): in its memory, or — for ``serve --workers N``, whose processes share the port and so
each get some of the heartbeats — in a directory every worker process of the server reads
(``MPR_REGISTRY_DIR``, made by the supervisor). One small file per node, written atomically."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import msgspec

log = logging.getLogger("gateway.state")

REGISTRY_DIR_ENV = "MPR_REGISTRY_DIR"
FORGET_AFTER_S = 300.0  # an expired node's file is removed this long after its expiry


class RegistrationStore(Protocol):
    def put(self, node: str, record: bytes, ttl_s: float) -> None: ...

    def all(self) -> dict[str, bytes]: ...


class MemoryRegistrations:
    """In this process only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._records: dict[str, tuple[float, bytes]] = {}

    def put(self, node: str, record: bytes, ttl_s: float) -> None:
        self._records[node] = (self.clock() + ttl_s, record)

    def all(self) -> dict[str, bytes]:
        now = self.clock()
        for node in [n for n, (expires, _) in self._records.items() if expires <= now]:
            del self._records[node]
        return {node: record for node, (_, record) in self._records.items()}


class _Entry(msgspec.Struct, frozen=True):
    node: str
    expires_at: float  # wall clock: every process of the server shares it
    record: str


class DirectoryRegistrations:
    """Files in ``directory`` shared by the processes of one server (long-expired ones are removed)."""

    def __init__(self, directory: Path, wall: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.wall = wall
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, node: str) -> Path:
        return self.directory / (hashlib.sha256(node.encode()).hexdigest()[:32] + ".json")

    def put(self, node: str, record: bytes, ttl_s: float) -> None:
        path = self._path(node)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            temporary.write_bytes(msgspec.json.encode(_Entry(node, self.wall() + ttl_s, record.decode())))
            os.replace(temporary, path)  # atomic: a reader sees the old file or the new one
        except OSError as exc:
            log.warning("registration of %s not written to %s: %s", node, self.directory, exc)

    def all(self) -> dict[str, bytes]:
        now = self.wall()
        found: dict[str, bytes] = {}
        try:
            paths = list(self.directory.glob("*.json"))
        except OSError:
            return found
        for path in paths:
            try:
                entry = msgspec.json.decode(path.read_bytes(), type=_Entry)
            except (OSError, msgspec.DecodeError):
                continue  # removed meanwhile, or not ours
            if entry.expires_at <= now:
                if entry.expires_at < now - FORGET_AFTER_S:  # long dead (a fresh write cannot race this)
                    path.unlink(missing_ok=True)
                continue
            found[entry.node] = entry.record.encode()
        return found


def registrations_from_env(env: dict[str, str] | None = None) -> RegistrationStore:
    """A directory store when the supervisor of ``serve --workers N`` set ``MPR_REGISTRY_DIR``, else memory."""
    directory = (os.environ if env is None else env).get(REGISTRY_DIR_ENV)
    return DirectoryRegistrations(Path(directory)) if directory else MemoryRegistrations()
