"""The JSON-lines usage log (``telemetry.usage_log``): one line per request for billing. Each
line is one ``write`` to a file opened with ``O_APPEND``, so the lines of several worker
processes never interleave. No prompt text, no key: the key's name."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import msgspec

log = logging.getLogger("gateway.usage")

_FDS: dict[Path, int] = {}  # one descriptor per path for the process's life (reloads keep it)


def usage_line(record: dict[str, Any]) -> bytes:
    """One record as a JSON line (pure)."""
    return msgspec.json.encode(record) + b"\n"


def append(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to the log at ``path`` (errors are logged, never raised)."""
    try:
        fd = _FDS.get(path)
        if fd is None:
            fd = _FDS[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        os.write(fd, usage_line(record))
    except OSError as exc:
        log.warning("usage log %s: %s", path, type(exc).__name__)
