"""Adapter manifests: ``lora_adapters/<role>/adapter.yaml`` describes one LoRA specialist."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


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
    variants: dict[str, Variant] = Field(min_length=1)

    def variant(self, size: str) -> Variant:
        """The variant for ``size``; raises :class:`ManifestError` naming the sizes on offer."""
        try:
            return self.variants[size]
        except KeyError:
            offered = ", ".join(sorted(self.variants))
            raise ManifestError(f"adapter {self.name!r} has no variant {size!r} (available: {offered})") from None


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
        return AdapterManifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise ManifestError(f"invalid adapter manifest {source}: {problems}") from None


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
