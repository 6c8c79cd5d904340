"""The ``mpr-gateway`` console script: ``check-config`` and the offline ``demo``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from tests.gateway.conftest import DemoProcess
from tests.support.gateway_proc import REPO

SCRIPT = Path(sys.executable).with_name("mpr-gateway")


def mpr_gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "gateway"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60, cwd=REPO, env={**os.environ, **(env or {})})


def test_check_config_accepts_the_shipped_routes() -> None:
    result = mpr_gateway("check-config", str(REPO / "config" / "routes.yaml"))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert result.stderr == "" or "error" not in result.stderr.lower()


BAD = """\
server:
  port: "eighty"
  max_body_bytes: 10
targets:
  - name: a
    endpoints: ["http://x:9000/nov1"]
    timeout_s: -1
  - name: b
    endpoints: []
refinement:
  drift: {max_drift: 2}
  describer: {placement: sideways}
  stages: [cleaner, summariser]
bogus_key: 1
"""


def test_check_config_prints_every_error_with_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(BAD)
    result = mpr_gateway("check-config", str(path))
    assert result.returncode != 0
    errors = result.stderr
    for key_path in (
        "server.port",
        "server.max_body_bytes",
        "targets[0].endpoints[0]",
        "targets[0].timeout_s",
        "targets[1].endpoints",
        "refinement.drift.max_drift",
        "refinement.describer.placement",
        "refinement.stages[1]",
        "bogus_key",
    ):
        assert f": {key_path}: " in errors, (key_path, errors)
    assert "/v1" in errors  # the endpoint error says what is wrong
    assert len([line for line in errors.splitlines() if line.strip()]) == 9
    assert "OK" not in result.stdout


@pytest.mark.parametrize(
    ("text", "key_path"),
    [
        ("targets: [\n", "<yaml>"),
        ("- just\n- a list\n", "<root>"),
        ("targets:\n  - {name: a, endpoints: ['${MPR_TEST_SURELY_UNSET}']}\n", "targets[0].endpoints[0]"),
        ("targets:\n  - {name: a, endpoints: ['http://h:1/v1']}\n  - {name: a, endpoints: ['http://h:2/v1']}\n", "<root>"),
        ("server: {}\n", "targets"),
        (
            "targets:\n  - {name: a, endpoints: ['http://h:1/v1']}\n"
            "adapters:\n  cleaner: {endpoints: ['http://h:2/v1'], model: cleaner, prompt: no-such-prompt.md}\n",
            "adapters.cleaner.prompt",
        ),
    ],
    ids=["yaml_syntax", "not_a_mapping", "unset_env_var", "duplicate_target", "no_targets", "missing_prompt_file"],
)
def test_check_config_bad_files(tmp_path: Path, text: str, key_path: str) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    result = mpr_gateway("check-config", str(path))
    assert result.returncode != 0
    assert f"{path}: {key_path}: " in result.stderr, result.stderr


def test_check_config_missing_file(tmp_path: Path) -> None:
    result = mpr_gateway("check-config", str(tmp_path / "nope.yaml"))
    assert result.returncode != 0
    assert "nope.yaml" in result.stderr


def test_check_config_interpolates_env(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("targets:\n  - {name: a, endpoints: ['${MPR_TEST_TARGET}']}\n")
    assert mpr_gateway("check-config", str(path), env={"MPR_TEST_TARGET": "http://h:9/v1"}).returncode == 0


def test_demo_answers_through_the_sdk_with_the_corrected_prompt(demo: DemoProcess) -> None:
    with openai.OpenAI(base_url=demo.url + "/v1", api_key="anything", max_retries=0, timeout=10) as client:
        (model,) = [m.id for m in client.models.list()]
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "what is the captial of frnace?"}]
        )
        answer = raw.parse().choices[0].message.content or ""
        assert raw.headers["x-mpr-refinement"] == "cleaner"
        assert "capital of france" in answer.lower()
        assert "captial" not in answer
        echoed = json.loads(answer[answer.index("[") :])
        assert echoed == [{"role": "user", "content": "what is the capital of france?"}]

        clean = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "What is the capital of France?"}]
        )
        assert clean.headers["x-mpr-refinement"] == "skipped;reason=clean"

        stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "what is teh capittal of france?"}], stream=True)
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert "what is the capital of france?" in streamed


def test_demo_log_says_which_parts_are_built_in(demo: DemoProcess) -> None:
    log = demo.logs().lower()
    assert "built-in" in log
    assert "cleaner" in log and "echo" in log
