"""Fixtures for the admin API tests: a real gateway process on loopback with an admin key, a fake
target and a fake adapter worker (separate peers, so the worker can be stopped alone), and a
reader of ``GET /admin/events`` in a thread."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import CLEANED, DESCRIBED, DIRTY, PARAPHRASED, refining, wait_until  # noqa: F401 - re-exported to the admin tests
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

ADMIN_KEY = "admin-test-key"
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}


def admin_config(target_url: str, worker_url: str, **server: Any) -> dict[str, Any]:
    """Routes with a short probe interval (health flips show within a second)."""
    return routes(target_url, worker_url, server={"probe_interval_s": 0.3, **server})


def restart(worker: FakeOpenAI) -> None:
    """Bring a stopped fake back on the port it had (the gateway's config points there)."""
    worker.start(worker.port)


@pytest.fixture(scope="module")
def target() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def worker() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(target: FakeOpenAI, worker: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = admin_config(target.base_url, worker.base_url)
    with GatewayProcess(config, tmp_path_factory.mktemp("admin"), env={"MPR_ADMIN_KEY": ADMIN_KEY}) as gw:
        yield gw


def status(gw: GatewayProcess) -> dict[str, Any]:
    response = httpx.get(gw.url + "/admin/status", headers=AUTH, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


class EventReader:
    """``GET /admin/events`` read in a thread: ``events`` (parsed), ``comments``, ``retry``, ``ended``."""

    def __init__(self, url: str, replay: int = 0, headers: dict[str, str] | None = None) -> None:
        self.url = f"{url}/admin/events?replay={replay}"
        self.headers = AUTH if headers is None else headers
        self.events: list[dict[str, Any]] = []
        self.comments: list[str] = []
        self.retry: int | None = None
        self.status: int | None = None
        self.content_type = ""
        self.ended = threading.Event()
        self.opened = threading.Event()
        self.error: BaseException | None = None
        self._socket: socket.socket | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=None))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._client.stream("GET", self.url, headers=self.headers) as response:
                self.status = response.status_code
                self.content_type = response.headers.get("content-type", "")
                self._socket = response.extensions["network_stream"].get_extra_info("socket")
                self.opened.set()
                buffer = ""
                for text in response.iter_text():
                    buffer += text
                    while "\n\n" in buffer:
                        frame, buffer = buffer.split("\n\n", 1)
                        self._frame(frame)
        except BaseException as exc:  # noqa: BLE001 - closed by the test, or the server went away
            self.error = exc
        finally:
            self.opened.set()
            self.ended.set()

    def _frame(self, frame: str) -> None:
        fields: dict[str, str] = {}
        for line in frame.split("\n"):
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif ":" in line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        if "retry" in fields:
            self.retry = int(fields["retry"])
        if "data" in fields:
            event = json.loads(fields["data"])
            assert fields.get("event") == event["kind"] and int(fields["id"]) == event["seq"]
            self.events.append(event)

    def of(self, kind: str, **data: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind and all(e["data"].get(k) == v for k, v in data.items())]

    def close(self) -> None:
        """Hang up (a real disconnect: the socket is shut down under the reading thread)."""
        if self._socket is not None and not self.ended.is_set():
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)
        self._client.close()

    def __enter__(self) -> EventReader:
        assert self.opened.wait(5), "the event stream did not open"
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def repo_path(*parts: str) -> Path:
    return Path(__file__).resolve().parents[2].joinpath(*parts)
