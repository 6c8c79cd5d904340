"""Version records of one adapter, kept in its ``adapter.yaml``.

Shape (top-level keys of the manifest, beside the legacy ``variants``)::

    versions:
      - version: 2
        name: cleaner@2                 # the LoRA name vLLM serves for this version
        weights: ../../out/cleaner-2    # directory; relative paths resolve against the manifest
        sha256: 3f...                   # weights_digest() of that directory
        base_model: meta-llama/Llama-3.2-3B-Instruct
        data: [{spec: "jfleg:data/jfleg/dev.tsv", sha256: "...", samples: 754}]
        training: {max_steps: 500, seed: 0, ...}
        evaluation: {restored: 0.82, ...}   # {} until `mpr-adapters evaluate`
    current: 2                          # absent: the worker serves the legacy `variants` entries

The writer edits only those two keys, as text, so the manifest's comments and the other keys stay
exactly as they were. Pure Python (``yaml`` only): importable from the gateway venv and vLLM's.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "AdapterVersion", "VersionError", "VersionRecords", "load_versions", "manifest_file", "next_version",
    "parse_versions", "record_version", "resolve_weights", "set_current", "update_version", "weights_digest",
    "version_name", "same_base", "find_by_weights",
]

_CHUNK = 1 << 20
_TOP_KEY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)\s*:")


class VersionError(Exception):
    """A version record is missing, malformed or does not match what was asked."""


def weights_digest(directory: str | os.PathLike[str]) -> str:
    """sha256 (hex) over every regular file under ``directory``, recursively.

    Files are taken in the order of their relative POSIX paths; for each one the digest reads
    ``path`` (UTF-8), a NUL byte, the size in decimal, a NUL byte, then the file's bytes. The
    directory's own name, timestamps and permissions do not count, so a copy digests the same.
    Pure: reads only, raises :class:`VersionError` for a path that is not a directory.
    """
    root = Path(directory)
    if not root.is_dir():
        raise VersionError(f"weights directory {root} does not exist or is not a directory")
    files = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for rel, path in files:
        digest.update(rel.encode("utf-8") + b"\0" + str(path.stat().st_size).encode("ascii") + b"\0")
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def version_name(role: str, version: int) -> str:
    """The LoRA name vLLM serves for a version: ``cleaner@2``."""
    return f"{role}@{version}"


@dataclass(frozen=True)
class AdapterVersion:
    """One entry of ``versions:``."""

    version: int
    name: str
    weights: str
    sha256: str
    base_model: str
    data: tuple[Mapping[str, Any], ...] = ()
    training: Mapping[str, Any] = field(default_factory=dict)
    evaluation: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version, "name": self.name, "weights": self.weights, "sha256": self.sha256,
            "base_model": self.base_model, "data": [dict(d) for d in self.data],
            "training": dict(self.training), "evaluation": dict(self.evaluation),
        }


@dataclass(frozen=True)
class VersionRecords:
    """Every version of one adapter and which one is current (``None``: the legacy ``variants``)."""

    manifest: Path
    versions: tuple[AdapterVersion, ...] = ()
    current: int | None = None

    def get(self, version: int) -> AdapterVersion:
        for v in self.versions:
            if v.version == version:
                return v
        known = ", ".join(str(v.version) for v in self.versions) or "none"
        raise VersionError(f"{self.manifest}: no version {version} (recorded: {known})")

    def current_version(self) -> AdapterVersion | None:
        return None if self.current is None else self.get(self.current)

    def latest(self) -> AdapterVersion | None:
        return max(self.versions, key=lambda v: v.version) if self.versions else None

    def weights_path(self, version: AdapterVersion) -> Path:
        """The version's weights directory, relative paths resolved against the manifest."""
        return resolve_weights(self.manifest, version.weights)


def manifest_file(path: str | os.PathLike[str]) -> Path:
    """``adapter.yaml`` itself, given it or its directory."""
    p = Path(path)
    return p / "adapter.yaml" if p.is_dir() else p


def resolve_weights(manifest: str | os.PathLike[str], weights: str) -> Path:
    """A version's ``weights`` as an absolute path (relative ones resolve against the manifest's directory)."""
    p = Path(weights).expanduser()
    return p if p.is_absolute() else (manifest_file(manifest).parent / p).resolve()


def _problem(source: str, where: str, message: str) -> VersionError:
    return VersionError(f"{source}: {where}: {message}")


def _parse_one(raw: object, index: int, source: str) -> AdapterVersion:
    where = f"versions[{index}]"
    if not isinstance(raw, Mapping):
        raise _problem(source, where, "must be a mapping")
    unknown = set(raw) - {"version", "name", "weights", "sha256", "base_model", "data", "training", "evaluation"}
    if unknown:
        raise _problem(source, where, f"unknown keys {sorted(unknown)}")
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _problem(source, f"{where}.version", f"{version!r} is not a positive integer")
    for key in ("name", "weights", "sha256", "base_model"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise _problem(source, f"{where}.{key}", "missing or not a non-empty string")
    if not re.fullmatch(r"[0-9a-f]{64}", raw["sha256"]):
        raise _problem(source, f"{where}.sha256", "not a 64-digit lowercase hex sha256")
    data = raw.get("data") or []
    if not isinstance(data, list) or not all(isinstance(d, Mapping) for d in data):
        raise _problem(source, f"{where}.data", "must be a list of {spec, sha256, samples} mappings")
    for key in ("training", "evaluation"):
        if raw.get(key) is not None and not isinstance(raw[key], Mapping):
            raise _problem(source, f"{where}.{key}", "must be a mapping")
    return AdapterVersion(version=version, name=raw["name"], weights=raw["weights"], sha256=raw["sha256"],
                          base_model=raw["base_model"], data=tuple(dict(d) for d in data),
                          training=dict(raw.get("training") or {}), evaluation=dict(raw.get("evaluation") or {}))


def parse_versions(data: Mapping[str, Any], manifest: str | os.PathLike[str] = "adapter.yaml") -> VersionRecords:
    """Pure: the version records of a parsed manifest (no ``versions`` key: none, current None)."""
    source = str(manifest)
    raw = data.get("versions") or []
    if not isinstance(raw, list):
        raise _problem(source, "versions", "must be a list")
    versions = tuple(_parse_one(item, i, source) for i, item in enumerate(raw))
    numbers = [v.version for v in versions]
    if len(set(numbers)) != len(numbers):
        raise _problem(source, "versions", f"duplicate version numbers {sorted(numbers)}")
    current = data.get("current")
    if current is not None:
        if not isinstance(current, int) or isinstance(current, bool):
            raise _problem(source, "current", f"{current!r} is not a version number")
        if current not in numbers:
            raise _problem(source, "current", f"{current} is not a recorded version ({numbers or 'none'})")
    return VersionRecords(manifest=Path(manifest), versions=versions, current=current)


def load_versions(manifest: str | os.PathLike[str]) -> VersionRecords:
    """Read the version records of ``adapter.yaml`` (the file or its directory)."""
    path = manifest_file(manifest)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise VersionError(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise VersionError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise VersionError(f"{path}: the manifest must be a mapping")
    return parse_versions(data, path)


def next_version(records: VersionRecords) -> int:
    latest = records.latest()
    return 1 if latest is None else latest.version + 1


def _strip_keys(text: str, keys: Iterable[str]) -> str:
    """Remove the top-level blocks ``keys`` (the key line and its indented/continuation lines)."""
    keys = set(keys)
    out: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        match = _TOP_KEY_RE.match(line)
        if match:
            skipping = match.group(1) in keys
        elif skipping and line.strip() and not line[0].isspace() and not line.startswith(("-", "#")):
            skipping = False
        if not skipping:
            out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return "".join(out)


def render_block(versions: Iterable[AdapterVersion], current: int | None) -> str:
    """The YAML text of the ``versions:`` / ``current:`` keys."""
    items = [v.to_dict() for v in sorted(versions, key=lambda v: v.version)]
    text = yaml.safe_dump({"versions": items}, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
    if current is not None:
        text += f"current: {current}\n"
    return text


def write_versions(manifest: str | os.PathLike[str], versions: Iterable[AdapterVersion], current: int | None) -> None:
    """Rewrite only ``versions:`` and ``current:`` of the manifest, atomically; the rest keeps its text."""
    path = manifest_file(manifest)
    original = path.read_text(encoding="utf-8")
    versions = tuple(versions)
    body = _strip_keys(original, ("versions", "current"))
    text = body.rstrip("\n") + "\n"
    if versions or current is not None:
        text += "# Trained versions (written by `mpr-adapters`; `current` picks the one workers serve).\n" \
            if "# Trained versions" not in body else ""
        text += render_block(versions, current)
    before = {k: v for k, v in (yaml.safe_load(original) or {}).items() if k not in ("versions", "current")}
    after = yaml.safe_load(text) or {}
    if {k: v for k, v in after.items() if k not in ("versions", "current")} != before:
        raise VersionError(f"{path}: refusing to write: the edit would change keys other than versions/current")
    parse_versions(after, path)  # the result must read back
    fd, tmp = tempfile.mkstemp(prefix=".adapter.", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _weights_ref(manifest: Path, weights: Path) -> str:
    """Relative to the manifest when the weights lie under the tree holding ``lora_adapters/``; else absolute."""
    weights = weights.resolve()
    root = manifest.resolve().parent.parent.parent
    try:
        weights.relative_to(root)
    except ValueError:
        return str(weights)
    return os.path.relpath(weights, manifest.resolve().parent)


def record_version(manifest: str | os.PathLike[str], role: str, weights: str | os.PathLike[str], base_model: str, *,
                   data: Iterable[Mapping[str, Any]] = (), training: Mapping[str, Any] | None = None,
                   evaluation: Mapping[str, Any] | None = None, make_current: bool = False) -> AdapterVersion:
    """Append the next version (digesting ``weights``) to the manifest and return it."""
    path = manifest_file(manifest)
    records = load_versions(path)
    number = next_version(records)
    entry = AdapterVersion(
        version=number, name=version_name(role, number), weights=_weights_ref(path, Path(weights)),
        sha256=weights_digest(weights), base_model=base_model, data=tuple(dict(d) for d in data),
        training=dict(training or {}), evaluation=dict(evaluation or {}),
    )
    write_versions(path, (*records.versions, entry), number if make_current else records.current)
    return entry


def update_version(manifest: str | os.PathLike[str], version: int, *,
                   evaluation: Mapping[str, Any] | None = None) -> AdapterVersion:
    """Replace a version's ``evaluation`` figures."""
    path = manifest_file(manifest)
    records = load_versions(path)
    old = records.get(version)
    new = AdapterVersion(**{**old.__dict__, "evaluation": dict(evaluation or {})})
    write_versions(path, tuple(new if v.version == version else v for v in records.versions), records.current)
    return new


def set_current(manifest: str | os.PathLike[str], version: int | None) -> None:
    """Make ``version`` current (``None``: back to the legacy ``variants``)."""
    path = manifest_file(manifest)
    records = load_versions(path)
    if version is not None:
        records.get(version)
    write_versions(path, records.versions, version)


def same_base(recorded: str, given: str) -> bool:
    """The same base model: an equal id or path, or the same final name
    (``/models/Llama-3.2-3B-Instruct`` ~ ``meta-llama/Llama-3.2-3B-Instruct``), as ``verify-adapters`` judges."""

    def last(ref: str) -> str:
        return str(ref).rstrip("/").rsplit("/", 1)[-1].lower()

    return str(recorded).rstrip("/") == str(given).rstrip("/") or last(recorded) == last(given)


def find_by_weights(records: VersionRecords, directory: str | os.PathLike[str]) -> AdapterVersion | None:
    """The recorded version whose digest is that of ``directory`` (the newest when several)."""
    digest = weights_digest(directory)
    found = [v for v in records.versions if v.sha256 == digest]
    return max(found, key=lambda v: v.version) if found else None
