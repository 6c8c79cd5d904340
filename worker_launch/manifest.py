"""Adapter manifests: ``lora_adapters/<role>/adapter.yaml`` describes one LoRA specialist.

A manifest may also hold trained **versions** (``versions:`` records and ``current:``, written by
``mpr-adapters``; format and digest in :mod:`adapter_lifecycle.versions`). ``cleaner@2`` selects
version 2; a plain ``cleaner`` selects ``current``, and without ``current`` the legacy ``variants``
entry for the size, exactly as before versions existed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

if TYPE_CHECKING:
    from adapter_lifecycle.versions import VersionRecords

_ROLE_VERSION_RE = re.compile(r"^(?P<role>[A-Za-z0-9._-]+)(?:@(?P<version>[0-9]+))?$")


class ManifestError(Exception):
    """A manifest is missing or invalid."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Training(_Frozen):
    """Where the adapter's weights came from (documentation only)."""

    dataset: str
    samples: int = Field(ge=0)
    task: str | None = None
    notes: str | None = None


class LoraSpec(_Frozen):
    """LoRA hyper-parameters; ``rank`` is the upper bound the worker reserves (``--max-lora-rank``)."""

    rank: int = Field(ge=1)
    alpha: int | None = Field(default=None, ge=1)
    target_modules: list[str] = Field(default_factory=list)
    dropout: float | None = Field(default=None, ge=0, lt=1, description="LoRA dropout while training (mpr-adapters train)")


class Variant(_Frozen):
    """One base-model size: the base model and this adapter's weights for it."""

    base_model: str = Field(min_length=1, description="Hugging Face repo id or local path")
    weights: str = Field(min_length=1, description="local directory (relative to the manifest) or HF repo id")


class AdapterManifest(_Frozen):
    """The whole ``adapter.yaml``."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$",
                      description="LoRA name vLLM serves; equals the manifest's directory name")
    role: str = Field(min_length=1, description="gateway stage it serves: cleaner, describer or paraphraser")
    description: str = ""
    prompt: str | None = Field(default=None, description="prompt template the gateway sends, relative path")
    training: Training
    lora: LoraSpec
    variants: dict[str, Variant] = Field(default_factory=dict)
    versions: list[dict[str, Any]] = Field(default_factory=list, description="trained versions (adapter_lifecycle)")
    current: int | None = Field(default=None, description="the version a plain role name serves")
    _records: VersionRecords | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _something_to_serve(self) -> AdapterManifest:
        if not self.variants and not self.versions:
            raise ValueError("a manifest needs `variants` or `versions`")
        return self

    @property
    def records(self) -> VersionRecords | None:
        """The parsed version records (None: the manifest has no ``versions``)."""
        return self._records

    def selection(self, size: str, version: int | None = None) -> Selection:
        """What to serve: ``version``, else ``current``, else the legacy variant for ``size``."""
        records = self._records
        if version is None and records is not None and records.current is not None:
            version = records.current
        if version is None:
            variant = self.variant(size)
            return Selection(name=self.name, base_model=variant.base_model, weights=variant.weights,
                             version=None, sha256=None, from_record=False)
        if records is None or not records.versions:
            raise ManifestError(f"adapter {self.name!r} has no recorded versions; {self.name}@{version} does not exist")
        from adapter_lifecycle.versions import VersionError

        try:
            record = records.get(version)
        except VersionError as exc:
            raise ManifestError(f"adapter {self.name!r}: {exc}") from None
        return Selection(name=record.name, base_model=record.base_model, weights=str(records.weights_path(record)),
                         version=record.version, sha256=record.sha256, from_record=True)

    def variant(self, size: str) -> Variant:
        """The variant for ``size``; raises :class:`ManifestError` naming the sizes on offer."""
        try:
            return self.variants[size]
        except KeyError:
            offered = ", ".join(sorted(self.variants)) or "none: it records only versions; pick one with ROLE@N or `current`"
            raise ManifestError(f"adapter {self.name!r} has no variant {size!r} (available: {offered})") from None


@dataclass(frozen=True)
class Selection:
    """The LoRA a role serves: its vLLM name, base model and weights; ``version``/``sha256`` when it
    comes from a version record (``weights`` is then an absolute directory)."""

    name: str
    base_model: str
    weights: str
    version: int | None
    sha256: str | None
    from_record: bool


def split_role_version(text: str) -> tuple[str, int | None]:
    """``"cleaner@2"`` → ``("cleaner", 2)``; ``"cleaner"`` → ``("cleaner", None)``."""
    match = _ROLE_VERSION_RE.match(text.strip())
    if match is None:
        raise ManifestError(f"{text!r} is not ROLE or ROLE@VERSION (e.g. cleaner@2)")
    version = match.group("version")
    if version is not None and int(version) < 1:
        raise ManifestError(f"{text!r}: versions start at 1")
    return match.group("role"), None if version is None else int(version)


def looks_like_local_path(ref: str) -> bool:
    """True for ``/abs``, ``./rel``, ``../rel`` or ``~`` references; ``org/name`` is a Hub repo id."""
    return ref.startswith(("/", "./", "../", "~")) or ref in (".", "..")


def resolve_ref(ref: str, base_dir: Path) -> str:
    """Make a local-path reference absolute (relative to ``base_dir``); leave Hub repo ids alone."""
    if looks_like_local_path(ref):
        return str((base_dir / Path(ref).expanduser()).resolve())
    candidate = base_dir / ref
    if "/" not in ref or candidate.exists():
        # a bare name or an existing relative directory is local
        return str(candidate.resolve())
    return ref


def parse_manifest(data: object, source: str) -> AdapterManifest:
    """Validate a parsed ``adapter.yaml``."""
    try:
        manifest = AdapterManifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise ManifestError(f"invalid adapter manifest {source}: {problems}") from None
    if isinstance(data, dict) and (data.get("versions") or data.get("current") is not None):
        manifest._records = _parse_records(data, source)
    return manifest


def _parse_records(data: dict[str, Any], source: str) -> VersionRecords:
    try:
        from adapter_lifecycle.versions import VersionError, parse_versions
    except ImportError as exc:  # an install without the adapter_lifecycle package
        raise ManifestError(f"{source} records versions but adapter_lifecycle cannot be imported: {exc}") from None
    try:
        return parse_versions(data, source)
    except VersionError as exc:
        raise ManifestError(f"invalid adapter manifest {exc}") from None


def manifest_path(adapters_dir: Path, role: str) -> Path:
    """Where the manifest for ``role`` lives."""
    return adapters_dir / role / "adapter.yaml"


def load_manifest(adapters_dir: Path, role: str) -> AdapterManifest:
    """Read and validate ``<adapters_dir>/<role>/adapter.yaml`` (``role``: the adapter's directory name)."""
    path = manifest_path(adapters_dir, role)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"no manifest for role {role!r}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"manifest {path} is not valid YAML: {exc}") from None
    manifest = parse_manifest(data, str(path))
    if manifest.name != role:
        raise ManifestError(f"manifest {path} names LoRA {manifest.name!r}; it must match its directory {role!r}")
    return manifest


def discover_adapters(adapters_dir: Path, preferred: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Directory names under ``adapters_dir`` holding an ``adapter.yaml``: ``preferred`` first, then sorted."""
    found = {p.parent.name for p in adapters_dir.glob("*/adapter.yaml")}
    return tuple(r for r in preferred if r in found) + tuple(sorted(found - set(preferred)))
