"""The readers behind :func:`adapter_lifecycle.data.load`: pure functions over local files, plus the
dataset-hub path (``hf:NAME``), which needs the ``datasets`` library and the internet.

Each ``read_<kind>(spec)`` returns ``(samples, sha256, notes)``; a row that cannot be read raises
:class:`DataError` with its file and line (nothing is dropped silently: rows left out on purpose,
such as an empty JFLEG correction, are counted in ``notes``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from adapter_lifecycle.data import DataError, DataSpec, Sample, fail, files_digest

Row = tuple[str, int | None, Mapping[str, Any]]  # (file or hub name, line, fields)

MAX_FACTS = 3      # the describer's rules (lora_adapters/describer/prompt.md, gateway's describer config)
MAX_TOKENS = 120

# ---------------------------------------------------------------------------------------- sources


def _local(spec: DataSpec) -> Path:
    path = Path(spec.source).expanduser()
    if not path.exists():
        raise DataError(f"data spec {spec.text!r}: {path} does not exist")
    return path


def _files(path: Path, patterns: tuple[str, ...]) -> list[Path]:
    if path.is_file():
        return [path]
    found = sorted({p for pattern in patterns for p in path.rglob(pattern) if p.is_file()})
    if not found:
        raise DataError(f"{path}: no data files ({', '.join(patterns)}) in this directory")
    return found


def _json_lines(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise fail(path, number, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise fail(path, number, f"expected a JSON object, got {type(row).__name__}")
            yield str(path), number, row


def _table(path: Path, required: tuple[str, ...]) -> Iterator[Row]:
    """A TSV (tab, no quoting: PAWS, GLUE's QQP) or CSV (quoted: Kaggle's QQP) file with a header."""
    tsv = path.suffix.lower() in (".tsv", ".txt")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise fail(path, 1, "empty file (expected a header line)") from None
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise fail(path, 1, f"header {header} lacks the columns {missing}")
        previous = reader.line_num
        for row in reader:
            number, previous = previous + 1, reader.line_num  # the line the row starts on
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise fail(path, number, f"{len(row)} fields, the header has {len(header)}")
            yield str(path), number, dict(zip(header, row, strict=True))


def _hub(spec: DataSpec, default_split: str, default_config: str | None = None) -> tuple[Iterator[Row], str]:
    """Rows of a dataset hub name (``hf:NAME``): needs ``datasets`` and the internet."""
    try:
        import datasets  # noqa: PLC0415
    except ImportError:
        raise DataError(f"data spec {spec.text!r}: loading a hub dataset needs the `datasets` library "
                        "(pip install datasets) and the internet; or download it and pass a local file") from None
    name = spec.hub or ""
    split = spec.options.get("split", default_split)
    config = spec.options.get("config", default_config)
    try:
        data = datasets.load_dataset(name, config, split=split, streaming="limit" in spec.options)
    except Exception as exc:  # noqa: BLE001  (network, unknown name, ...): one clear message
        raise DataError(f"data spec {spec.text!r}: cannot load {name} ({split}): {exc}") from None
    digest = hashlib.sha256(f"{name}\0{config}\0{split}\0{getattr(data, '_fingerprint', '')}".encode()).hexdigest()
    where = f"hf:{name}[{split}]"
    return ((where, i + 1, row) for i, row in enumerate(data)), digest


def _text(row: Mapping[str, Any], key: str, where: str, line: int | None, *, allow_empty: bool = False) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise fail(where, line, f"field {key!r} is {'missing' if value is None else type(value).__name__}, "
                   "expected a string")
    if not allow_empty and not value.strip():
        raise fail(where, line, f"field {key!r} is empty")
    return value.strip()


# ------------------------------------------------------------------------------------------ jfleg


def _jfleg_parallel(src: Path) -> Iterator[Row]:
    refs = sorted(src.parent.glob(src.stem + ".ref*"))
    if not refs:
        raise fail(src, None, f"no reference files {src.stem}.ref0, .ref1, ... beside it")
    sources = src.read_text(encoding="utf-8").splitlines()
    columns = []
    for ref in refs:
        lines = ref.read_text(encoding="utf-8").splitlines()
        if len(lines) != len(sources):
            raise fail(ref, min(len(lines), len(sources)) + 1,
                       f"{len(lines)} lines, but {src.name} has {len(sources)}")
        columns.append(lines)
    for i, sentence in enumerate(sources):
        yield str(src), i + 1, {"sentence": sentence, "corrections": [col[i] for col in columns]}


def read_jfleg(spec: DataSpec) -> tuple[Iterator[Sample], str, list[str]]:
    notes: list[str] = []
    if spec.hub:
        rows, digest = _hub(spec, "validation")
    else:
        path = _local(spec)
        files = _files(path, ("*.jsonl", "*.json", "*.src"))
        refs = [r for f in files if f.suffix == ".src" for r in f.parent.glob(f.stem + ".ref*")]
        digest = files_digest(files + refs)
        rows = (row for f in files for row in (_jfleg_parallel(f) if f.suffix == ".src" else _json_lines(f)))

    def samples() -> Iterator[Sample]:
        empty = 0
        for where, line, row in rows:
            sentence = _text(row, "sentence", where, line)
            corrections = row.get("corrections")
            if not isinstance(corrections, list) or not all(isinstance(c, str) for c in corrections):
                raise fail(where, line, "field 'corrections' must be a list of strings")
            seen: set[str] = set()
            for correction in corrections:
                correction = correction.strip()
                if not correction:
                    empty += 1
                    continue
                if correction not in seen:
                    seen.add(correction)
                    yield Sample(sentence, correction, f"{where}:{line}")
        if empty:
            notes.append(f"{empty} empty corrections left out")

    return samples(), digest, notes


# ------------------------------------------------------------------------------------- paws / qqp


def _label(value: Any, where: str, line: int | None, column: str) -> int:
    text = str(value).strip()
    if text not in ("0", "1"):
        raise fail(where, line, f"{column} is {text!r}, expected 0 or 1")
    return int(text)


def _pairs(spec: DataSpec, first: str, second: str, label: str, *, hub_split: str, hub_config: str | None,
           hub_label: str = "label") -> tuple[Iterator[Sample], str, list[str]]:
    notes: list[str] = []
    if spec.hub:
        rows, digest = _hub(spec, hub_split, hub_config)
        label_key = hub_label
    else:
        files = _files(_local(spec), ("*.tsv", "*.csv"))
        digest = files_digest(files)
        rows = (row for f in files for row in _table(f, (first, second, label)))
        label_key = label

    def samples() -> Iterator[Sample]:
        negatives = 0
        for where, line, row in rows:
            a = _text(row, first, where, line)
            b = _text(row, second, where, line)
            if _label(row.get(label_key), where, line, label_key) == 1:
                yield Sample(a, b, f"{where}:{line}")
            else:
                negatives += 1
        notes.append(f"{negatives} label-0 pairs left out (not paraphrases)")

    return samples(), digest, notes


def read_paws(spec: DataSpec) -> tuple[Iterator[Sample], str, list[str]]:
    return _pairs(spec, "sentence1", "sentence2", "label", hub_split="train", hub_config="labeled_final")


def read_qqp(spec: DataSpec) -> tuple[Iterator[Sample], str, list[str]]:
    return _pairs(spec, "question1", "question2", "is_duplicate", hub_split="train", hub_config="qqp")


# -------------------------------------------------------------------------------------- wikipedia

QUESTIONS = ("What is {title}?", "Tell me about {title}.", "Give me some background on {title}.",
             "What should I know about {title}?", "Explain {title} briefly.")
_PARENS_RE = re.compile(r"\s*\([^()]*\)")
_SPACE_RE = re.compile(r"[ \t]+")


def describer_answer(text: str, max_facts: int = MAX_FACTS, max_tokens: int = MAX_TOKENS) -> str:
    """The lead's first sentences, one a line, as the describer's rules ask (≤ 3 facts, ≤ 120 tokens)."""
    from gateway.refinement.text import sentences, truncate_tokens  # noqa: PLC0415

    lead = next((p for p in re.split(r"\n\s*\n|\n", text.strip()) if len(p.split()) >= 4), "")
    lead = _SPACE_RE.sub(" ", _PARENS_RE.sub("", lead)).strip()
    facts: list[str] = []
    used = 0
    for sentence in sentences(lead)[:max_facts]:
        n = len(sentence.split())
        if used + n > max_tokens:
            if not facts:
                facts.append(truncate_tokens(sentence, max_tokens))
            break
        facts.append(sentence)
        used += n
    return "\n".join(facts)


def describer_question(title: str, seed: int) -> str:
    rng = random.Random(seed * 0x1_0000_0000 + zlib.crc32(title.encode()))
    return rng.choice(QUESTIONS).format(title=title)


def read_wikipedia(spec: DataSpec) -> tuple[Iterator[Sample], str, list[str]]:
    notes: list[str] = []
    seed = int(spec.options.get("seed", "0"))
    if spec.hub:
        rows, digest = _hub(spec, "train", "20231101.en")
    else:
        files = _files(_local(spec), ("*.jsonl", "*.json"))
        digest = files_digest(files)
        rows = (row for f in files for row in _json_lines(f))

    def samples() -> Iterator[Sample]:
        no_lead = 0
        for where, line, row in rows:
            title = _text(row, "title", where, line)
            body = _text(row, "text", where, line, allow_empty=True)
            answer = describer_answer(body)
            if not answer:
                no_lead += 1
                continue
            yield Sample(describer_question(title, seed), answer, f"{where}:{line}")
        if no_lead:
            notes.append(f"{no_lead} articles without a lead paragraph left out")

    return samples(), digest, notes


# ------------------------------------------------------------------------------------------ jsonl


def read_jsonl(spec: DataSpec) -> tuple[Iterator[Sample], str, list[str]]:
    if spec.hub:
        rows, digest = _hub(spec, "train")
    else:
        files = _files(_local(spec), ("*.jsonl",))
        digest = files_digest(files)
        rows = (row for f in files for row in _json_lines(f))

    def samples() -> Iterator[Sample]:
        for where, line, row in rows:
            # an empty output is legitimate for the describer ("reply with nothing")
            yield Sample(_text(row, "input", where, line), _text(row, "output", where, line, allow_empty=True),
                         f"{where}:{line}")

    return samples(), digest, []


# ------------------------------------------------------------------------------------------ noise


def passages(text: str, max_words: int = 60) -> list[str]:
    """Split one line of clean text into passages of whole sentences, ≤ ``max_words`` words each."""
    from gateway.refinement.text import sentences  # noqa: PLC0415

    out: list[str] = []
    current: list[str] = []
    for sentence in sentences(text):
        if current and len(" ".join([*current, sentence]).split()) > max_words:
            out.append(" ".join(current))
            current = []
        current.append(sentence)
    if current:
        out.append(" ".join(current))
    return out


def noise_pairs(texts: Iterable[tuple[str, str]], rate: float, clean_share: float, seed: int) -> Iterator[Sample]:
    """Self-supervised cleaner pairs: (typo'd text → clean text), and a ``clean_share`` of clean → unchanged.

    Typos come from :mod:`gateway.eval.noise`, every kind of it (swaps, deletions, insertions,
    substitutions, doubled letters, real-word substitutions, deleted words); a passage with no
    word a typo can go into becomes a clean pair.
    """
    from gateway.eval.noise import inject, rng_for  # noqa: PLC0415
    from gateway.refinement.dictionary import english_words  # noqa: PLC0415

    vocabulary = english_words()
    for key, text in texts:
        rng = rng_for(seed, key, rate)
        if rng.random() < clean_share:
            yield Sample(text, text, key)
            continue
        noisy = inject(text, rate, rng, vocabulary)
        yield Sample(noisy.text, text, key)


def read_noise(spec: DataSpec) -> tuple[Iterator[Sample], str, list[str]]:
    def number(key: str, default: float, low: float, high: float) -> float:
        try:
            value = float(spec.options.get(key, default))
        except ValueError:
            raise DataError(f"data spec {spec.text!r}: {key}={spec.options[key]!r} is not a number") from None
        if not low <= value <= high:
            raise DataError(f"data spec {spec.text!r}: {key}={value} is outside [{low}, {high}]")
        return value

    rate, clean = number("rate", 0.12, 0.0, 1.0), number("clean", 0.2, 0.0, 1.0)
    seed = int(number("seed", 0, 0, 2**31))
    if spec.hub:
        raise DataError(f"data spec {spec.text!r}: noise data comes from local clean text (a .txt or .jsonl file)")
    files = _files(_local(spec), ("*.txt", "*.jsonl", "*.md"))

    def texts() -> Iterator[tuple[str, str]]:
        for f in files:
            if f.suffix == ".jsonl":
                lines: Iterable[tuple[int | None, str]] = (
                    (line, _text(row, "text", where, line)) for where, line, row in _json_lines(f))
            else:
                try:
                    content = f.read_text(encoding="utf-8")
                except UnicodeDecodeError as exc:
                    raise fail(f, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
                lines = ((i, t) for i, t in enumerate(content.splitlines(), 1) if t.strip())
            for line, text in lines:
                for j, passage in enumerate(passages(text.strip())):
                    yield f"{f}:{line}" + (f"#{j}" if j else ""), passage

    return noise_pairs(texts(), rate, clean, seed), files_digest(files), []
