"""Adapter prompt templates (``lora_adapters/<role>/prompt.md``).

Format: optional ``# system`` and ``# user`` headings; ``{{input}}`` marks where the user's prompt
goes (appended on a new line when absent); HTML comments are dropped. Without headings the whole
file is the user message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SLOT = "{{input}}"
_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
_HEADING_RE = re.compile(r"^#\s*(system|user)\s*$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    system: str | None
    user: str

    def render(self, text: str) -> list[dict[str, str]]:
        """Chat messages for one stage call."""
        user = self.user.replace(SLOT, text) if SLOT in self.user else f"{self.user}\n{text}".strip()
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages.append({"role": "user", "content": user})
        return messages


def parse_template(source: str) -> PromptTemplate:
    """Parse template text (see module docstring)."""
    source = _COMMENT_RE.sub("", source)
    headings = list(_HEADING_RE.finditer(source))
    if not headings:
        return PromptTemplate(None, source.strip() or SLOT)
    sections: dict[str, str] = {}
    for i, match in enumerate(headings):
        end = headings[i + 1].start() if i + 1 < len(headings) else len(source)
        sections[match.group(1).lower()] = source[match.end() : end].strip()
    return PromptTemplate(sections.get("system") or None, sections.get("user") or SLOT)


def load_template(path: Path) -> PromptTemplate:
    return parse_template(path.read_text(encoding="utf-8"))
