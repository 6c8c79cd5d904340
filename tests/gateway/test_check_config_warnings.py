"""``mpr-gateway check-config`` accepts a file whose stage can never run, but says so: a stage in
``refinement.stages`` without an adapter (and not the built-in cleaner) is a warning, exit 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.config.checks import config_warnings
from gateway.config.loader import parse_config
from tests.support.gateway_proc import REPO

TARGET = {"name": "a", "endpoints": ["http://h:1/v1"]}
PROMPT = str(REPO / "lora_adapters" / "cleaner" / "prompt.md")


def _config(refinement: dict[str, object], adapters: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    return parse_config({"targets": [TARGET], "adapters": adapters or {}, "refinement": refinement}, base_dir=REPO, source="<test>")


def test_a_stage_without_an_adapter_is_named() -> None:
    warnings = config_warnings(_config({"stages": ["cleaner", "describer"]}, {"cleaner": {"endpoints": ["http://w:1/v1"], "model": "cleaner", "prompt": PROMPT}}))
    assert [path for path, _ in warnings] == ["refinement.stages[1]"]
    assert "describer has no adapter" in warnings[0][1]
    assert config_warnings(_config({"stages": ["cleaner"], "builtin_cleaner": "always"})) == []  # the built-in serves it
    assert [p for p, _ in config_warnings(_config({}))] == ["refinement.stages[0]", "refinement.stages[1]", "refinement.stages[2]"]


def test_check_config_prints_the_warning_and_still_accepts(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("targets:\n  - {name: a, endpoints: ['http://h:1/v1']}\nrefinement: {stages: [cleaner, describer], builtin_cleaner: always}\n")
    result = subprocess.run([sys.executable, "-m", "gateway", "check-config", str(path)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0 and "OK" in result.stdout
    assert result.stderr.strip() == f"{path}: warning: refinement.stages[1]: " + config_warnings(
        _config({"stages": ["cleaner", "describer"], "builtin_cleaner": "always"})
    )[0][1]
