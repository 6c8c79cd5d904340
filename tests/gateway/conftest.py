"""Shared fixtures for the gateway integration tests.

The gateway runs as a real ``python -m gateway serve`` subprocess on loopback (one per module);
the adapters and the target are a :class:`FakeOpenAI` peer in a thread (one per module, reset
before each test). The OpenAI spec is loaded once per session for shape checks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import REPO, GatewayProcess, free_port

SPEC_PATH = REPO.parent / "shared" / "reference" / "openai-openapi.yaml"

# A prompt the skip gate sends to refinement (two misspellings) and stage outputs for it.
DIRTY = "whats the captial of frane and how big is it"
CLEANED = "whats the capital of france and how big is it"  # drift 0.04
PARAPHRASED = "What is the capital of France, and how large is it?"  # drift 0.14
DESCRIBED = "France is a country in Western Europe. Its capital city is Paris."
CLEAN = "What is the capital of France and how big is it?"  # skip gate: clean


def stage_reply(text: str) -> Callable[[str, dict[str, Any]], str]:
    return lambda _model, _body: text


def refining(
    fake: FakeOpenAI,
    cleaned: str | None = CLEANED,
    paraphrased: str | None = PARAPHRASED,
    described: str | None = DESCRIBED,
    **extra: Any,
) -> None:
    """Make the fake's adapters (models ``cleaner``/``describer``/``paraphraser``) answer these texts."""
    for role, text in (("cleaner", cleaned), ("paraphraser", paraphrased), ("describer", described)):
        if text is not None:
            fake.behave(role, Behaviour(reply=stage_reply(text), **extra))


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until truthy; returns its value or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


_RESERVED: list[socket.socket] = []


def dead_url() -> str:
    """A loopback ``/v1`` base URL where nothing listens (connections are refused).

    The port stays bound (never listening) for the whole session, so no server started later,
    a gateway of this very test included, can be handed it.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _RESERVED.append(sock)
    return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


# -- OpenAPI shapes ------------------------------------------------------------------------------


class OpenAPISchemas:
    """Validate instances against ``#/components/schemas/<name>`` of the OpenAI spec ($refs resolved)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self._validators: dict[str, jsonschema.protocols.Validator] = {}

    def validator(self, name: str) -> jsonschema.protocols.Validator:
        if name not in self._validators:
            assert name in self.spec["components"]["schemas"], name
            root = {"$ref": f"#/components/schemas/{name}", "components": self.spec["components"]}
            self._validators[name] = jsonschema.Draft202012Validator(root)
        return self._validators[name]

    def validate(self, instance: Any, name: str) -> None:
        self.validator(name).validate(instance)

    def is_valid(self, instance: Any, name: str) -> bool:
        return self.validator(name).is_valid(instance)


@pytest.fixture(scope="session")
def openapi() -> OpenAPISchemas:
    try:
        loader: Any = yaml.CSafeLoader
    except AttributeError:  # pragma: no cover - libyaml missing
        loader = yaml.SafeLoader
    with SPEC_PATH.open(encoding="utf-8") as handle:
        return OpenAPISchemas(yaml.load(handle, Loader=loader))


@pytest.fixture(scope="session")
def assert_openai_error(openapi: OpenAPISchemas) -> Callable[..., dict[str, Any]]:
    """Check an httpx response is an OpenAI-shaped error with this status (and code)."""

    def check(response: httpx.Response, status: int, code: str | None = None, error_type: str | None = None) -> dict[str, Any]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        openapi.validate(body, "ErrorResponse")
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["message"]
        if code is not None:
            assert body["error"]["code"] == code, body
        if error_type is not None:
            assert body["error"]["type"] == error_type, body
        return body["error"]

    return check


# -- peers -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_fake(request: pytest.FixtureRequest) -> None:
    """Every test starts with default behaviours and empty records on the module's fake."""
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()


def start_gateway(tmp_path_factory: pytest.TempPathFactory, config: dict[str, Any], env: dict[str, str] | None = None) -> GatewayProcess:
    (gw,) = start_gateways(tmp_path_factory, config, env=env)
    return gw


def start_gateways(
    tmp_path_factory: pytest.TempPathFactory, *configs: dict[str, Any], env: dict[str, str] | None = None
) -> list[GatewayProcess]:
    """Launch one gateway per config in parallel and wait until all answer ``/health``."""
    workdir: Path = tmp_path_factory.mktemp("gateway")
    gateways = [GatewayProcess(config, workdir, env).launch() for config in configs]
    try:
        for gw in gateways:
            gw.wait_ready()
    except BaseException:
        stop_gateways(gateways)
        raise
    return gateways


def stop_gateways(gateways: list[GatewayProcess]) -> None:
    for gw in gateways:
        gw.terminate()
    for gw in gateways:
        gw.stop()


def adapters_tree(url: str, **per_role: dict[str, Any]) -> dict[str, Any]:
    """The ``adapters`` section for three stages at ``url`` with per-role overrides."""
    tree: dict[str, Any] = {}
    for role in ("cleaner", "describer", "paraphraser"):
        tree[role] = {
            "endpoints": [url],
            "model": role,
            "prompt": str(REPO / "lora_adapters" / role / "prompt.md"),
            "timeout_s": 1.0,
            "cooldown_s": 1,
            **per_role.get(role, {}),
        }
    return tree


# -- the offline demo ------------------------------------------------------------------------------


class DemoProcess:
    """``mpr-gateway demo`` on a free port. Its built-in cleaner loads SymSpell (seconds of CPU),
    so the suite launches it at collection time, in the background, when a demo test is selected."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkdtemp(prefix="mpr-demo-")) / "demo.log"
        script = Path(sys.executable).with_name("mpr-gateway")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "gateway"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*command, "demo", "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=dict(os.environ)
            )

    def wait_ready(self, timeout_s: float = 60) -> DemoProcess:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"demo exited: {self.logs()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"demo did not start in {timeout_s:g}s: {self.logs()[-3000:]}")
            time.sleep(0.1)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


_demo: DemoProcess | None = None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    global _demo
    here = Path(__file__).parent
    if _demo is None and any(
        "demo" in getattr(item, "fixturenames", ()) and here in Path(str(item.path)).parents for item in items
    ):
        _demo = DemoProcess()


@pytest.fixture(scope="session")
def demo() -> Iterator[DemoProcess]:
    global _demo
    process = _demo or DemoProcess()
    _demo = process
    try:
        yield process.wait_ready()
    finally:
        process.stop()
        _demo = None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _demo is not None:
        _demo.stop()
