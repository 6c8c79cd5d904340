"""Durable small records of the in-process state (who created a response, a canary's verdict):
kept apart from the cache's LRU so that traffic never evicts them, and — for the workers of one
``serve --workers N`` without Redis — in files of the server's shared directory (``MPR_REGISTRY_DIR``,
made by the supervisor), so that every worker reads what another wrote. One file per record, in
256 sub-directories, written atomically; expired files are swept a sub-directory at a time."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import msgspec

from gateway.state.registrations import REGISTRY_DIR_ENV

log = logging.getLogger("gateway.state")

MEMORY_RECORDS = 100_000
SWEEP_EVERY = 1024  # puts between two sweeps of one sub-directory


class RecordStore(Protocol):
    def put(self, key: str, value: bytes, ttl_s: float) -> None: ...

    def get(self, key: str) -> bytes | None: ...


class MemoryRecords:
    """This process's records: a bounded LRU (the oldest go first past ``capacity``)."""

    def __init__(self, capacity: int = MEMORY_RECORDS, clock: Callable[[], float] = time.time) -> None:
        self.capacity, self.clock = capacity, clock
        self._records: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        self._records[key] = (self.clock() + ttl_s, value)
        self._records.move_to_end(key)
        while len(self._records) > self.capacity:
            self._records.popitem(last=False)

    def get(self, key: str) -> bytes | None:
        found = self._records.get(key)
        if found is None or found[0] <= self.clock():
            return None
        return found[1]


class _Entry(msgspec.Struct, array_like=True):
    key: str
    expires_at: float
    value: str  # latin-1: the bytes as they were


class DirectoryRecords:
    """Files under ``directory``, shared by the processes of one server."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self.directory, self.clock = directory, clock
        self._puts = 0

    def _path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.directory / digest[:2] / digest[2:34]

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        path = self._path(key)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(msgspec.json.encode(_Entry(key, self.clock() + ttl_s, value.decode("latin-1"))))
            os.replace(temporary, path)  # atomic: a reader sees the old file or the new one
        except OSError as exc:
            log.warning("record not written to %s: %s", self.directory, exc)
            return
        self._puts += 1
        if self._puts % SWEEP_EVERY == 0:
            self.sweep(f"{random.randrange(256):02x}")

    def get(self, key: str) -> bytes | None:
        try:
            entry = msgspec.json.decode(self._path(key).read_bytes(), type=_Entry)
        except (OSError, msgspec.DecodeError):
            return None
        if entry.key != key or entry.expires_at <= self.clock():
            return None
        return entry.value.encode("latin-1")

    def sweep(self, sub: str) -> int:
        """Remove the expired records of one sub-directory; how many."""
        removed = 0
        now = self.clock()
        try:
            paths = list((self.directory / sub).iterdir())
        except OSError:
            return 0
        for path in paths:
            try:
                entry = msgspec.json.decode(path.read_bytes(), type=_Entry)
            except (OSError, msgspec.DecodeError):
                continue
            if entry.expires_at <= now:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


PROCESS_RECORDS = MemoryRecords()
"""This process's records, kept across reloads (a reload builds a new state)."""


def records_from_env(env: dict[str, str] | None = None) -> RecordStore:
    """Files in the server's shared directory under ``serve --workers N``, else this process's memory."""
    directory = (os.environ if env is None else env).get(REGISTRY_DIR_ENV)
    return DirectoryRecords(Path(directory) / "records") if directory else PROCESS_RECORDS
