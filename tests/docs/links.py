"""Relative links and anchors of the repository's Markdown (pure functions; ``test_links`` uses them).

Anchors follow GitHub's rule: a heading's text (Markdown markup dropped) lowercased, every
character that is not a letter, digit, space, ``-`` or ``_`` removed, spaces turned into ``-``,
and ``-1``, ``-2``… added to repeats; an explicit ``<a id="…">`` (or ``name``) counts too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?\s*\)")
_HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
_INLINE_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


@dataclass(frozen=True)
class Link:
    source: Path
    line: int
    target: str


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = _INLINE_LINK.sub(r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, inline code spans removed."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, re.sub(r"`[^`]*`", "", line)


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown file defines."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        found.update(_HTML_ANCHOR.findall(line))
        match = _HEADING.match(line)
        if match:
            base = slug(match.group(2))
            n = counts.get(base, 0)
            counts[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[Link]:
    """The relative links (and images) of one Markdown file; web and mail links are left out."""
    out = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for match in (*_LINK.finditer(line), *_IMAGE.finditer(line)):
            target = match.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                continue
            out.append(Link(path, number, target))
    return out


def broken(link: Link, root: Path) -> str | None:
    """Why ``link`` does not resolve (a missing file, or a missing anchor in it); None when it does."""
    target, _, anchor = link.target.partition("#")
    file = (link.source.parent / target).resolve() if target else link.source.resolve()
    if not file.exists():
        return f"no file {target}"
    if root.resolve() not in (file, *file.parents):
        return f"{target} is outside the repository"
    if anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8")):
        return f"no anchor #{anchor} in {file.relative_to(root.resolve())}"
    return None


SKIPPED_DIRS = ("node_modules", "site-packages")


def markdown_files(root: Path) -> list[Path]:
    """Every Markdown file of the repository (not in hidden folders: virtual environments, caches)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not (d.startswith(".") or d in SKIPPED_DIRS or d.endswith(".egg-info"))]
        found += [Path(folder) / name for name in files if name.endswith(".md")]
    return sorted(found)
