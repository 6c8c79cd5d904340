"""Check adapter directories before vLLM sees them: base model, rank, config and weights on disk."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from worker_launch.manifest import looks_like_local_path
from worker_launch.plan import LaunchSpec, LoraModule

WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass(frozen=True)
class Finding:
    """One verification result line; ``error`` findings make verification fail."""

    level: Literal["error", "warning"]
    role: str
    message: str


@dataclass(frozen=True)
class AdapterFiles:
    """What was read from one adapter directory (gathered by :func:`read_adapter_dir`)."""

    directory: Path | None
    config: Mapping[str, Any] | None
    config_error: str | None
    weights: Mapping[str, str | None]  # file name -> problem (None = readable)
    digest: str | None = None  # weights_digest of the directory (read when a version record names one)
    digest_error: str | None = None


def base_models_match(declared: str, expected: str) -> bool:
    """Same repo id / path, or the same final name (``/models/Llama-3.2-3B-Instruct`` ~ ``meta-llama/Llama-3.2-3B-Instruct``)."""

    def last(ref: str) -> str:
        return ref.rstrip("/").rsplit("/", 1)[-1].lower()

    return declared.rstrip("/") == expected.rstrip("/") or last(declared) == last(expected)


def version_label(lora: LoraModule) -> str:
    """``version 2 (cleaner@2)`` for a versioned LoRA, else its name."""
    return f"version {lora.version} ({lora.name})" if lora.version is not None else lora.name


def check_record(lora: LoraModule, served_base: str) -> list[Finding]:
    """Pure: a version recorded for another base model than the one served is refused."""
    if lora.record_base_model is None or base_models_match(lora.record_base_model, served_base):
        return []
    return [Finding("error", lora.role, f"{version_label(lora)} was trained on base model {lora.record_base_model!r} "
                                        f"(its record's base_model) but this worker serves {served_base!r}")]


def check_digest(lora: LoraModule, files: AdapterFiles) -> list[Finding]:
    """Pure: the weights directory's digest against the version record's ``sha256``."""
    if lora.sha256 is None or files.directory is None:
        return []
    if files.digest is None:
        return [Finding("error", lora.role, f"{version_label(lora)}: cannot digest {files.directory}: "
                                            f"{files.digest_error or 'unknown error'}")]
    if files.digest != lora.sha256:
        return [Finding("error", lora.role, f"{version_label(lora)}: weights digest mismatch in {files.directory}: "
                                            f"expected sha256 {lora.sha256} (the record), actual {files.digest}")]
    return []


def check_adapter(lora: LoraModule, expected_base: str, max_lora_rank: int, files: AdapterFiles) -> list[Finding]:
    """Pure: every problem with one adapter, given what was read from disk."""
    out: list[Finding] = check_record(lora, expected_base)

    def err(message: str) -> None:
        out.append(Finding("error", lora.role, message))

    if files.directory is None:
        if looks_like_local_path(lora.path):
            err(f"adapter directory {lora.path} does not exist")
        else:
            out.append(Finding("warning", lora.role, f"{lora.path} is not in the local Hugging Face cache; "
                               f"vLLM will download it at start (or run: huggingface-cli download {lora.path})"))
        return out
    if files.config is None:
        err(f"{files.directory}/adapter_config.json: {files.config_error or 'missing'}")
    else:
        peft_type = str(files.config.get("peft_type", "")).upper()
        if peft_type != "LORA":
            err(f"adapter_config.json peft_type is {peft_type or 'missing'!r}, expected 'LORA'")
        base = files.config.get("base_model_name_or_path")
        if not isinstance(base, str) or not base:
            err("adapter_config.json has no base_model_name_or_path")
        elif not base_models_match(base, expected_base):
            err(f"adapter was trained on {base!r} but this worker serves {expected_base!r}")
        rank = files.config.get("r")
        if not isinstance(rank, int) or rank < 1:
            err(f"adapter_config.json r is {rank!r}, expected a positive integer")
        else:
            if rank > lora.rank:
                err(f"adapter rank r={rank} exceeds the manifest's rank {lora.rank}")
            if rank > max_lora_rank:
                err(f"adapter rank r={rank} exceeds --max-lora-rank {max_lora_rank}")
    readable = [name for name, problem in files.weights.items() if problem is None]
    if not readable:
        problems = "; ".join(f"{n}: {p}" for n, p in files.weights.items() if p) or "no weight file"
        err(f"no usable weights in {files.directory} ({' or '.join(WEIGHT_FILES)}): {problems}")
    out += check_digest(lora, files)
    return out


def safetensors_problem(path: Path) -> str | None:
    """None when ``path`` is a complete safetensors file with at least one tensor, else why not."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                return "truncated header"
            (header_len,) = struct.unpack("<Q", raw)
            if header_len > size - 8:
                return "header longer than the file"
            header = json.loads(fh.read(header_len))
    except (OSError, ValueError) as exc:
        return f"unreadable: {exc}"
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    if not tensors:
        return "contains no tensors"
    end = max(int(v["data_offsets"][1]) for v in tensors.values())
    if 8 + header_len + end > size:
        return "truncated tensor data"
    return None


def hf_cache_dir(env: Mapping[str, str]) -> Path:
    """The Hugging Face hub cache directory, as ``huggingface_hub`` resolves it."""
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"])
    home = Path(env["HF_HOME"]) if env.get("HF_HOME") else Path.home() / ".cache" / "huggingface"
    return home / "hub"


def locate(ref: str, env: Mapping[str, str]) -> Path | None:
    """A local directory for ``ref``: the path itself, or the newest cached snapshot of a Hub repo id."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    if looks_like_local_path(ref) or ref.count("/") != 1:
        return None
    snapshots = hf_cache_dir(env) / f"models--{ref.replace('/', '--')}" / "snapshots"
    candidates = sorted((p for p in snapshots.glob("*") if (p / "adapter_config.json").exists()),
                        key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def digest_dir(directory: Path) -> tuple[str | None, str | None]:
    """(sha256, None) of a weights directory (:func:`adapter_lifecycle.versions.weights_digest`), or (None, why not)."""
    try:
        from adapter_lifecycle.versions import VersionError, weights_digest
    except ImportError as exc:
        return None, f"adapter_lifecycle cannot be imported: {exc}"
    try:
        return weights_digest(directory), None
    except (VersionError, OSError) as exc:
        return None, str(exc)


def read_adapter_dir(ref: str, env: Mapping[str, str] | None = None, digest: bool = False) -> AdapterFiles:
    """Gather what :func:`check_adapter` needs from disk (``digest``: also the weights digest)."""
    directory = locate(ref, os.environ if env is None else env)
    if directory is None:
        return AdapterFiles(None, None, None, {})
    config: Mapping[str, Any] | None = None
    config_error: str | None = None
    try:
        loaded = json.loads((directory / "adapter_config.json").read_text(encoding="utf-8"))
        config = loaded if isinstance(loaded, dict) else None
        config_error = None if config is not None else "not a JSON object"
    except FileNotFoundError:
        config_error = "missing"
    except (OSError, ValueError) as exc:
        config_error = f"unreadable: {exc}"
    weights: dict[str, str | None] = {}
    for name in WEIGHT_FILES:
        path = directory / name
        if path.exists():
            if name.endswith(".safetensors"):
                weights[name] = safetensors_problem(path)
            else:
                weights[name] = None if path.stat().st_size > 0 else "empty file"
    found, problem = digest_dir(directory) if digest else (None, None)
    return AdapterFiles(directory, config, config_error, weights, found, problem)


def verify_spec(spec: LaunchSpec, env: Mapping[str, str] | None = None) -> list[Finding]:
    """Verify every adapter of a launch spec against its base model and rank limit."""
    findings: list[Finding] = []
    for lora in spec.loras:
        files = read_adapter_dir(lora.path, env, digest=lora.sha256 is not None)
        findings += check_adapter(lora, spec.base_model, spec.max_lora_rank, files)
    return findings


def record_findings(spec: LaunchSpec) -> list[Finding]:
    """The checks that hold even with ``--skip-verify``: each served version's recorded base model."""
    return [f for lora in spec.loras for f in check_record(lora, spec.base_model)]
