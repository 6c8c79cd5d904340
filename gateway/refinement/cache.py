"""An on-disk cache for built resources (the lexicon, the cleaner's candidate index).

Building them from their sources takes seconds; unpickling takes tens of milliseconds. Files live
in ``$MPR_CACHE_DIR`` (``off`` disables the cache), else ``$XDG_CACHE_HOME/mpr-gateway`` or
``~/.cache/mpr-gateway``. A file's name carries a key (the sources' versions and a checksum of
the code that builds it), so an upgrade or a code change rebuilds it; older files of the same
name are removed. A cache that cannot be read or written is only logged: the resource is built.
"""

from __future__ import annotations

import logging
import os
import pickle
import zlib
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TypeVar

log = logging.getLogger("gateway.refinement")
T = TypeVar("T")


def cache_dir() -> Path | None:
    """Where cached resources live; None when ``MPR_CACHE_DIR=off``."""
    root = os.environ.get("MPR_CACHE_DIR")
    if root == "off":
        return None
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mpr-gateway")
    return Path(root)


def cache_key(packages: Iterable[str], sources: Iterable[str | Path]) -> str | None:
    """The installed versions of ``packages`` and a checksum of the ``sources`` files; None when a
    package is missing."""
    try:
        versions = "-".join(f"{name}{version(name)}" for name in packages)
    except PackageNotFoundError:
        return None
    checksum = 0
    for source in sources:
        checksum = zlib.crc32(Path(source).read_bytes(), checksum)
    return f"{versions}-{checksum:08x}"


def cached(name: str, key: str | None, build: Callable[[], T], kind: type) -> T:
    """``build()``'s result, from ``<cache dir>/<name>-<key>.pickle`` when it is there."""
    root = cache_dir()
    if root is None or key is None:
        return build()
    path = root / f"{name}-{key}.pickle"
    if path.is_file():
        try:
            with path.open("rb") as handle:
                value = pickle.load(handle)
            if isinstance(value, kind):
                return value  # type: ignore[no-any-return]
        except Exception:  # a corrupt or foreign file: rebuild it
            log.warning("cache file %s unreadable; rebuilding it", path)
    value = build()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as handle:
            pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        for stale in root.glob(f"{name}-*.pickle"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError as exc:
        log.info("cache file %s not written (%s)", path, exc)
    return value
