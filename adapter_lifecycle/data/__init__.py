"""Training data: readers for public formats and anyone's own pairs, all yielding :class:`Sample`.

A data SPEC names a reader and a source, ``KIND:SOURCE[?key=value&...]``:

============  =====================================================================  ==============
KIND          SOURCE (a local file or directory; ``hf:NAME`` loads a dataset hub name)  roles
============  =====================================================================  ==============
``jfleg``     JSON lines ``{sentence, corrections}``, or ``X.src`` + ``X.ref0..N``      cleaner
``paws``      PAWS TSV ``id sentence1 sentence2 label`` (label-1 pairs)                paraphraser
``qqp``       QQP TSV (GLUE) or CSV (Kaggle) ``... question1 question2 is_duplicate``   paraphraser
``wikipedia`` JSON lines ``{title, text}`` → a question from the title, ≤ 3 facts       describer
``jsonl``     JSON lines ``{input, output}`` (your own data)                            any
``noise``     clean text, one passage a line → typo'd/clean pairs (gateway.eval.noise)  cleaner
============  =====================================================================  ==============

Options: ``limit=N`` (first N samples), ``split=NAME`` (hub datasets), and for ``noise``
``rate=R`` (typo rate per eligible word, default 0.12), ``clean=F`` (share of unchanged pairs,
default 0.2), ``seed=S``. A malformed line raises :class:`DataError` naming its file and line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

__all__ = ["DataError", "DataSet", "DataSpec", "KINDS", "Sample", "load", "parse_spec"]


class DataError(Exception):
    """Bad data or a bad SPEC; the message names the file and line where there is one."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One training pair: the user's prompt and the answer the adapter should give."""

    input: str
    output: str
    source: str = ""  # file:line it came from


@dataclass(frozen=True)
class DataSpec:
    kind: str
    source: str
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def hub(self) -> str | None:
        return self.source[3:] if self.source.startswith("hf:") else None


@dataclass(frozen=True)
class DataSet:
    spec: DataSpec
    samples: tuple[Sample, ...]
    sha256: str  # of the source file(s) bytes, or of the hub name + split
    notes: tuple[str, ...] = ()  # what was left out and why (e.g. empty JFLEG corrections)

    def record(self) -> dict[str, object]:
        return {"spec": self.spec.text, "sha256": self.sha256, "samples": len(self.samples)}


def fail(path: Path | str, line: int | None, message: str) -> DataError:
    where = f"{path}:{line}" if line is not None else str(path)
    return DataError(f"{where}: {message}")


def parse_spec(text: str) -> DataSpec:
    kind, sep, rest = text.partition(":")
    if not sep or not rest:
        raise DataError(f"data spec {text!r}: expected KIND:SOURCE (kinds: {', '.join(KINDS)})")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise DataError(f"data spec {text!r}: unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
    source, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
    unknown = set(options) - _OPTIONS[kind]
    if unknown:
        raise DataError(f"data spec {text!r}: unknown options {sorted(unknown)} "
                        f"(allowed: {sorted(_OPTIONS[kind])})")
    return DataSpec(kind, source, options, text)


def files_digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _int_option(spec: DataSpec, key: str, default: int | None) -> int | None:
    value = spec.options.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise DataError(f"data spec {spec.text!r}: {key}={value!r} is not an integer") from None


def load(spec: DataSpec | str, role: str | None = None) -> DataSet:
    """Read one SPEC into samples (``role``: refuse a reader made for another role)."""
    from adapter_lifecycle.data import readers  # noqa: PLC0415

    spec = parse_spec(spec) if isinstance(spec, str) else spec
    roles = _ROLES[spec.kind]
    if role is not None and roles and role not in roles:
        raise DataError(f"data spec {spec.text!r}: {spec.kind} data trains the {'/'.join(roles)}, not the {role}")
    reader: Callable[[DataSpec], tuple[Iterator[Sample], str, list[str]]] = getattr(readers, f"read_{spec.kind}")
    samples, digest, notes = reader(spec)
    limit = _int_option(spec, "limit", None)
    out = []
    for sample in samples:
        if limit is not None and len(out) >= limit:
            break
        out.append(sample)
    if not out:
        raise DataError(f"data spec {spec.text!r} gave no samples")
    return DataSet(spec, tuple(out), digest, tuple(notes))


KINDS = ("jfleg", "paws", "qqp", "wikipedia", "jsonl", "noise")
_ROLES: dict[str, tuple[str, ...]] = {
    "jfleg": ("cleaner",), "paws": ("paraphraser",), "qqp": ("paraphraser",), "wikipedia": ("describer",),
    "jsonl": (), "noise": ("cleaner",),
}
_COMMON = {"limit", "split", "config"}
_OPTIONS: dict[str, set[str]] = {k: set(_COMMON) for k in KINDS}
_OPTIONS["noise"] |= {"rate", "clean", "seed"}
_OPTIONS["wikipedia"] |= {"seed"}
