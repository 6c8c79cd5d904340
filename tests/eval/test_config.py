"""``mpr-gateway eval --config routes.yaml``: the stages a routes file defines, run in-process (here
a fake vLLM cleaner that corrects spelling like the built-in one, so the figures must agree)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import main
from gateway.refinement.spelling import SpellingCleaner
from tests.support.fake_openai import Behaviour, FakeOpenAI, _last_user_text
from tests.support.gateway_proc import routes


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    cleaner = SpellingCleaner()
    with FakeOpenAI() as server:
        server.behave("cleaner", Behaviour(reply=lambda _model, body: cleaner.correct(_last_user_text(body))))
        yield server


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["eval", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_config_backend(fake: FakeOpenAI, tmp_path: Path, prompt_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump(routes(fake.base_url, adapter_url=fake.base_url)))
    args = [str(prompt_file), "--noise", "0.2", "--seed", "5"]
    remote = run_json(capsys, *args, "--config", str(path), "--concurrency", "4")
    local = run_json(capsys, *args)
    assert remote["backend"] == f"config:{path}"
    for key in ("refinements", "clean", "noise", "restoration", "changed", "sources", "worst"):
        assert remote[key] == local[key], key
    cleaner = remote["latency_ms"]["stages"]["cleaner"]
    assert cleaner["errors"] == 0 and cleaner["n"] == len(fake.requests_for("cleaner")) > 0
    assert not fake.requests_for("paraphraser") and not fake.requests_for("describer")  # only --stages ran
    assert remote["latency_ms"]["gate"]["n"] > 0


def test_config_without_the_stage(tmp_path: Path, prompt_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump(routes("http://127.0.0.1:9/v1")))
    assert main(["eval", str(prompt_file), "--config", str(path)]) == 2
    assert "has no cleaner stage" in capsys.readouterr().err
