"""Fixtures for the evaluation harness tests: a small prompt file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PROMPTS = [
    {"id": "f1", "source": "fact", "lang": "en", "prompt": "What is the capital of France and how big is the city?"},
    {"id": "f2", "source": "fact", "prompt": "Explain how the water cycle moves water between the oceans and the land."},
    {"id": "f3", "source": "fact", "lang": "en", "prompt": "Which planet in our solar system has the most moons, and why?"},
    {"id": "c1", "source": "code", "lang": "en", "prompt": "How do I read a file line by line in Python without loading all of it?"},
    {"id": "c2", "source": "code", "lang": "en", "prompt": "Why does my loop print the same number every time when I run it?"},
    {"id": "x1", "source": "other", "lang": "fr", "prompt": "Quelle est la capitale de la France et combien d'habitants a-t-elle ?"},
]


@pytest.fixture(scope="session")
def prompt_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "small.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS), encoding="utf-8")
    return path
