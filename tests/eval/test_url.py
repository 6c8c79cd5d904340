"""``mpr-gateway eval --url`` against a real gateway subprocess (``mpr-gateway demo``: the built-in
cleaner, no GPU): the HTTP backend measures what the in-process one does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway.cli import main
from tests.support.gateway_proc import REPO, GatewayProcess, free_port, routes


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("demo") / "demo.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "demo", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"demo exited: {log_path.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"demo did not start: {log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["eval", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def without_tokens(worst: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {kind: [{k: v for k, v in ex.items() if k != "tokens"} for ex in items] for kind, items in worst.items()}


def test_url_matches_in_process(demo_url: str, prompt_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(prompt_file), "--noise", "0.1,0.3", "--seed", "2"]
    remote = run_json(capsys, *args, "--url", demo_url + "/v1/", "--concurrency", "4")
    local = run_json(capsys, *args)
    assert remote["backend"] == f"url:{demo_url}/v1/"
    # same gate, same cleaner, same config defaults: the same figures
    for key in ("noise_levels", "prompts", "english_prompts", "refinements", "noise", "restoration", "changed", "sources"):
        assert remote[key] == local[key], key
    assert {k: v for k, v in remote["clean"].items() if k != "tokens"} == {k: v for k, v in local["clean"].items() if k != "tokens"}
    assert without_tokens(remote["worst"]) == without_tokens(local["worst"])
    # over HTTP the gate alone is not timed; the stages are
    assert remote["latency_ms"]["gate"] is None
    assert remote["latency_ms"]["stages"]["cleaner"]["n"] == local["latency_ms"]["stages"]["cleaner"]["n"] > 0

    assert main(["eval", str(prompt_file), "--url", demo_url, "--worst", "1"]) == 0
    out = capsys.readouterr().out
    assert "backend url:" in out and re.search(r"^\s+gate\s+n/a", out, re.MULTILINE)


def test_api_key_and_missing_stages(
    tmp_path: Path, prompt_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway with client keys and no stages: 401 without the key; with it (flag or env), the
    harness says the gateway lacks the stage instead of reporting nothing restored."""
    config = routes("http://127.0.0.1:9/v1", server={"api_keys": ["sekret"]})
    with GatewayProcess(config, tmp_path) as gw:
        monkeypatch.delenv("MPR_API_KEY", raising=False)
        assert main(["eval", str(prompt_file), "--url", gw.url]) == 1
        assert "HTTP 401" in capsys.readouterr().err
        assert main(["eval", str(prompt_file), "--url", gw.url, "--api-key", "sekret"]) == 1
        assert "has none of the stages cleaner" in capsys.readouterr().err
        monkeypatch.setenv("MPR_API_KEY", "sekret")
        assert main(["eval", str(prompt_file), "--url", gw.base_url]) == 1
        assert "has none of the stages cleaner" in capsys.readouterr().err
