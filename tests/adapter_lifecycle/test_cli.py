"""``mpr-adapters`` without training: help, versions/promote, the zero-shot example config."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
import yaml

from adapter_lifecycle.cli import build_parser, main
from adapter_lifecycle.versions import load_versions, record_version
from gateway.config.loader import load_config

REPO = Path(__file__).resolve().parents[2]


def _commands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_option_is_explained(name: str) -> None:
    parser = _commands()[name]
    unexplained = [a.option_strings or [a.dest] for a in parser._actions if not isinstance(a, argparse._HelpAction) and not a.help]
    assert unexplained == []


def test_versions_and_promote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    adapters = tmp_path / "lora_adapters"
    shutil.copytree(REPO / "lora_adapters", adapters)
    weights = tmp_path / "w"
    weights.mkdir()
    (weights / "adapter_config.json").write_text("{}")
    record_version(adapters / "paraphraser", "paraphraser", weights, "meta-llama/Llama-3.2-3B-Instruct")
    assert main(["--adapters-dir", str(adapters), "promote", "paraphraser", "1"]) == 0
    assert load_versions(adapters / "paraphraser").current == 1
    assert main(["--adapters-dir", str(adapters), "versions", "paraphraser"]) == 0
    assert "* paraphraser@1" in capsys.readouterr().out
    assert main(["--adapters-dir", str(adapters), "promote", "paraphraser", "4"]) == 2
    assert "no version 4" in capsys.readouterr().err
    assert main(["--adapters-dir", str(adapters), "promote", "paraphraser", "none"]) == 0
    assert load_versions(adapters / "paraphraser").current is None


def test_unknown_data_kind_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "cleaner", "--base", str(tmp_path), "--data", "csv:x.csv", "--out", str(tmp_path / "o")])
    assert code == 2 and "unknown kind 'csv'" in capsys.readouterr().err


def test_the_zero_shot_example_runs_every_stage_on_one_base_model() -> None:
    path = REPO / "config" / "examples" / "zero-shot.yaml"
    config = load_config(path)
    models = {role: getattr(config.adapters, role).model for role in ("cleaner", "describer", "paraphraser")}
    assert set(models) == {"cleaner", "describer", "paraphraser"} and len(set(models.values())) == 1
    raw = yaml.safe_load(path.read_text())
    for role, adapter in raw["adapters"].items():
        assert (path.parent / adapter["prompt"]).resolve() == REPO / "lora_adapters" / role / "prompt.md"


def test_acceptance_judges_answers_with_the_gateways_drift_control() -> None:
    import httpx

    from adapter_lifecycle.cli import acceptance, side_by_side
    from gateway.eval.prompts import Prompt

    answers = {
        "How does a heat pump warm a house in winter?":
            "A heat pump moves heat from the outside air into the house.\nIt uses electricity to run a compressor.",
        "Tell me about the city of Lyon.": "Tell me about the city of Lyon.",
    }
    sent: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        text = body["messages"][-1]["content"]
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": answers[text]}}]})

    prompts = [Prompt(id=str(i), text=t, source="test") for i, t in enumerate(answers)]
    client = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://w")
    figures = acceptance("describer", "http://w/v1", REPO / "lora_adapters" / "describer" / "prompt.md", prompts, client)
    assert figures["n"] == 2 and figures["accepted"] == 1 and figures["rate"] == 0.5
    assert figures["reasons"] == {"accepted": 1, "echo": 1}
    assert sent[0]["model"] == "describer" and sent[0]["messages"][0]["role"] == "system"

    table = side_by_side({"candidate": {"drift_acceptance": figures}, "describer@1": {"drift_acceptance": {"rate": 0.25}}})
    assert "drift_acceptance.rate" in table and "0.5" in table and "0.25" in table


def test_hub_names_load_through_the_datasets_library(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from adapter_lifecycle.data import load

    calls: list[tuple[object, ...]] = []
    rows = {
        "jhu-clsp/jfleg": [{"sentence": "He go home .", "corrections": ["He goes home .", "He went home ."]}],
        "google-research-datasets/paws": [{"id": 1, "sentence1": "A big dog ran .", "sentence2": "A large dog ran .", "label": 1},
                                          {"id": 2, "sentence1": "X .", "sentence2": "Y .", "label": 0}],
        "nyu-mll/glue": [{"question1": "How tall is Everest?", "question2": "What is the height of Everest?", "label": 1}],
    }

    def load_dataset(name: str, config: object = None, *, split: str, streaming: bool) -> list[dict[str, object]]:
        calls.append((name, config, split, streaming))
        return rows[name]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    assert [s.output for s in load("jfleg:hf:jhu-clsp/jfleg").samples] == ["He goes home .", "He went home ."]
    assert [s.output for s in load("paws:hf:google-research-datasets/paws").samples] == ["A large dog ran ."]
    assert load("qqp:hf:nyu-mll/glue?limit=5").samples[0].source == "hf:nyu-mll/glue[train]:1"
    assert calls == [("jhu-clsp/jfleg", None, "validation", False),
                     ("google-research-datasets/paws", "labeled_final", "train", False),
                     ("nyu-mll/glue", "qqp", "train", True)]
