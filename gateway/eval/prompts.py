"""Loading the evaluation prompts from ``.jsonl`` / ``.txt`` files and directories."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SUFFIXES = (".jsonl", ".txt")


class PromptFileError(ValueError):
    """A prompt path that cannot be used; the message names the file (and line)."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """One evaluation prompt. ``lang`` None means English."""

    id: str
    text: str
    source: str
    lang: str | None = None

    @property
    def english(self) -> bool:
        return self.lang is None or self.lang.lower() in ("en", "eng", "english") or self.lang.lower().startswith("en-")


def load_prompts(paths: Iterable[str | Path]) -> list[Prompt]:
    """Prompts from files and directories, in the order given (a directory: its files sorted, recursively)."""
    prompts: list[Prompt] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not files:
                raise PromptFileError(f"{path}: no .jsonl or .txt files in this directory")
            for file in files:
                prompts.extend(load_file(file))
        elif path.is_file():
            prompts.extend(load_file(path))
        else:
            raise PromptFileError(f"{path}: no such file or directory")
    if not prompts:
        raise PromptFileError(f"no prompts in {', '.join(str(p) for p in paths)}")
    return prompts


def load_file(path: Path) -> list[Prompt]:
    """The prompts of one ``.jsonl`` or ``.txt`` file."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise PromptFileError(f"{path}: unsupported file type (expected .jsonl or .txt)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptFileError(f"{path}: {exc}") from None
    lines = text.splitlines()
    return _jsonl(path, lines) if suffix == ".jsonl" else _txt(path, lines)


def _txt(path: Path, lines: list[str]) -> list[Prompt]:
    return [Prompt(f"{path.stem}:{n}", line.strip(), path.stem) for n, line in enumerate(lines, 1) if line.strip()]


def _jsonl(path: Path, lines: list[str]) -> list[Prompt]:
    prompts = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptFileError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(item, dict):
            raise PromptFileError(f"{where}: expected a JSON object with a \"prompt\" string")
        prompt = item.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise PromptFileError(f"{where}: \"prompt\" must be a non-empty string")
        for key in ("id", "source", "lang"):
            if item.get(key) is not None and not isinstance(item[key], str | int):
                raise PromptFileError(f"{where}: \"{key}\" must be a string")
        ident = item.get("id")
        source = item.get("source")
        lang = item.get("lang")
        prompts.append(
            Prompt(
                id=str(ident) if ident is not None else f"{path.stem}:{n}",
                text=prompt,
                source=str(source) if source else path.stem,
                lang=str(lang) if lang else None,
            )
        )
    return prompts
