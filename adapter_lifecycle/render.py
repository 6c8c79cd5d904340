"""Render training samples exactly as the gateway sends them: the role's ``prompt.md`` through
:mod:`gateway.refinement.prompts` (the gateway's own template code), then the answer."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from adapter_lifecycle.data import Sample
from gateway.refinement.prompts import PromptTemplate, load_template

REPO_ADAPTERS = Path(__file__).resolve().parents[1] / "lora_adapters"


def role_template(adapters_dir: Path, role: str) -> PromptTemplate:
    """The role's template: ``<adapters_dir>/<role>/`` + the manifest's ``prompt`` (default ``prompt.md``);
    a manifest directory without one (``mpr-worker make-test-model``'s) uses the repository's."""
    return load_template(prompt_path(adapters_dir, role))


def prompt_path(adapters_dir: Path, role: str) -> Path:
    manifest = adapters_dir / role / "adapter.yaml"
    data = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}
    path = adapters_dir / role / (data.get("prompt") or "prompt.md")
    return path if path.exists() else REPO_ADAPTERS / role / "prompt.md"


def render_sample(template: PromptTemplate, sample: Sample) -> dict[str, Any]:
    """``{messages, answer, source}``: the chat the gateway sends for ``sample.input`` and the reply to learn."""
    return {"messages": template.render(sample.input), "answer": sample.output, "source": sample.source}


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n
