"""Plain ``key=value`` log lines on stdout (one event per line, flushed at once)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_value(value: object) -> str:
    """Quote a value when it holds spaces, quotes or is empty."""
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def format_line(timestamp: float, level: str, event: str, fields: dict[str, object]) -> str:
    """``2025-10-31T12:00:00Z mpr-worker INFO event=started pid=12 ...``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
    parts = [stamp, "mpr-worker", level, f"event={format_value(event)}"]
    parts += [f"{key}={format_value(value)}" for key, value in fields.items()]
    return " ".join(parts)


def log(event: str, level: str = "INFO", stream: TextIO | None = None, **fields: object) -> None:
    """Write one log line to stdout (or ``stream``)."""
    out = stream or sys.stdout
    out.write(format_line(time.time(), level, event, fields) + "\n")
    out.flush()
