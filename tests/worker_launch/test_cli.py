"""``mpr-worker`` command line: dry runs, verification exit codes, argument errors, log lines."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from worker_launch.cli import main, split_passthrough
from worker_launch.logs import format_line, format_value


def test_split_passthrough() -> None:
    assert split_passthrough(["launch", "--role", "cleaner"]) == (["launch", "--role", "cleaner"], [])
    assert split_passthrough(["launch", "--", "--seed", "1", "--", "x"]) == (["launch"], ["--seed", "1", "--", "x"])


def test_dry_run_prints_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["launch", "--role", "cleaner,describer,paraphraser", "--device", "cpu", "--dry-run",
                 "--vllm-python", "/opt/v/bin/python", "--otlp-traces-endpoint", "http://otel:4317",
                 "--adapter", "cleaner=/nonexistent/cleaner", "--",
                 "--seed", "3"])
    assert code == 0
    captured = capsys.readouterr()
    words = shlex.split(captured.out.strip())
    assert words[:4] == ["OTEL_SERVICE_NAME=vllm-cleaner-describer-paraphraser", "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True",
                         "VLLM_CPU_KVCACHE_SPACE=4", "VLLM_CPU_OMP_THREADS_BIND=auto"]
    argv = words[4:]
    assert argv[:3] == ["/opt/v/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert argv[argv.index("--port") + 1] == "8002"
    i = argv.index("--lora-modules")
    assert [json.loads(a)["name"] for a in argv[i + 1 : i + 4]] == ["cleaner", "describer", "paraphraser"]
    assert argv[-2:] == ["--seed", "3"]
    assert json.loads(argv[i + 1])["path"] == "/nonexistent/cleaner"
    # missing weights: the dry run still prints, and says so on stderr
    assert "ERROR cleaner: adapter directory /nonexistent/cleaner does not exist" in captured.err


def test_launch_refuses_broken_adapters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["launch", "--role", "cleaner", "--adapter", "cleaner=/nonexistent/cleaner",
                 "--vllm-python", "/nonexistent/python"]) == 1
    out = capsys.readouterr()
    assert "event=verify_failed" in out.out and "does not exist" in out.err


def test_launch_without_vllm_says_how_to_install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from worker_launch.testmodel import build_test_model

    config = build_test_model(tmp_path)
    code = main(["launch", "--config", str(config), "--role", "cleaner", "--vllm-python", sys.executable])
    assert code == 1
    assert "has no vllm package" in capsys.readouterr().out


def test_verify_adapters_fails_without_weights(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify-adapters", "--role", "describer", "--size", "8b", "--adapter", "describer=/nonexistent/d"]) == 1
    out = capsys.readouterr()
    assert "FAIL describer: describer -> /nonexistent/d (base meta-llama/Llama-3.1-8B-Instruct, max rank 64)" in out.out
    assert "adapter directory /nonexistent/d does not exist" in out.err


@pytest.mark.parametrize("argv", [
    ["launch", "--role", "summarizer", "--dry-run"],
    ["launch", "--role", "cleaner", "--size", "70b", "--dry-run"],
    ["launch", "--role", "cleaner", "--adapter", "cleaner", "--dry-run"],
    ["verify-adapters", "--config", "/nonexistent.yaml"],
    ["make-test-model", "/tmp/x", "--", "extra"],
])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.strip()


def test_log_lines() -> None:
    assert format_value("a b") == '"a b"' and format_value("") == '""' and format_value(3) == "3"
    line = format_line(0, "INFO", "ready", {"pid": 12, "cmd": 'x "y"'})
    assert line == '1970-01-01T00:00:00Z mpr-worker INFO event=ready pid=12 cmd="x \\"y\\""'


def test_a_fourth_adapter_is_just_another_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from worker_launch.testmodel import build_test_model

    config = build_test_model(tmp_path)
    manifest = yaml.safe_load((tmp_path / "lora_adapters" / "describer" / "adapter.yaml").read_text())
    manifest.update(name="describer-wikidata", description="Wiki+Wikidata describer")
    (tmp_path / "lora_adapters" / "describer-wikidata").mkdir()
    (tmp_path / "lora_adapters" / "describer-wikidata" / "adapter.yaml").write_text(yaml.safe_dump(manifest))

    assert main(["verify-adapters", "--config", str(config)]) == 0
    assert "OK describer-wikidata: describer-wikidata ->" in capsys.readouterr().out
    assert main(["launch", "--config", str(config), "--role", "describer-wikidata", "--dry-run"]) == 2
    assert "no port configured for role 'describer-wikidata'" in capsys.readouterr().err
    assert main(["launch", "--config", str(config), "--role", "describer,describer-wikidata", "--dry-run"]) == 0
    argv = shlex.split(capsys.readouterr().out)
    i = argv.index("--lora-modules")
    assert [json.loads(a)["name"] for a in argv[i + 1 : i + 3]] == ["describer", "describer-wikidata"]
    assert argv[argv.index("--port") + 1] == "8003" and argv[argv.index("--max-loras") + 1] == "2"
