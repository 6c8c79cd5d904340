"""Loading prompt files: .jsonl, .txt, directories, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.eval.prompts import Prompt, PromptFileError, load_prompts


def write_jsonl(path: Path, items: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


def test_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "set.jsonl",
        [
            {"id": "q1", "prompt": "What is the capital of France?", "source": "fact", "lang": "en"},
            {"prompt": "Quelle heure est-il ?", "lang": "fr"},
        ],
    )
    with path.open("a") as handle:
        handle.write("\n")  # blank lines are skipped
    assert load_prompts([path]) == [
        Prompt("q1", "What is the capital of France?", "fact", "en"),
        Prompt("set:2", "Quelle heure est-il ?", "set", "fr"),
    ]
    english = load_prompts([path])
    assert english[0].english and not english[1].english
    assert Prompt("x", "t", "s").english  # no lang: English


def test_txt(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_text("how are you\n\n  what time is it  \n", encoding="utf-8")
    assert load_prompts([str(path)]) == [Prompt("chat:1", "how are you", "chat"), Prompt("chat:3", "what time is it", "chat")]


def test_directory_sorted_and_recursive(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write_jsonl(tmp_path / "b.jsonl", [{"prompt": "second"}])
    (tmp_path / "a.txt").write_text("first\n")
    (tmp_path / "sub" / "c.txt").write_text("third\n")
    (tmp_path / "notes.md").write_text("ignored\n")
    assert [p.text for p in load_prompts([tmp_path])] == ["first", "second", "third"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", '{"prompt": "ok"}\n{"prompt": \n', "bad.jsonl:2: invalid JSON"),
        ("bad.jsonl", '{"text": "no prompt"}\n', "bad.jsonl:1: \"prompt\" must be a non-empty string"),
        ("bad.jsonl", '["a list"]\n', "bad.jsonl:1: expected a JSON object"),
        ("bad.jsonl", '{"prompt": "x", "source": ["a"]}\n', "bad.jsonl:1: \"source\" must be a string"),
        ("bad.csv", "prompt\n", "unsupported file type"),
        ("empty.txt", "\n\n", "no prompts"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PromptFileError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_prompts([path])


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(PromptFileError, match="no such file or directory"):
        load_prompts([tmp_path / "nope.jsonl"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(PromptFileError, match="no .jsonl or .txt files"):
        load_prompts([tmp_path / "empty"])
