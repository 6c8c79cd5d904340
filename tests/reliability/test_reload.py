"""Live configuration of the real ``mpr-gateway serve`` (``POST /admin/reload``, SIGHUP) against
fake OpenAI peers on loopback.

* a reload that adds a target and rotates the client key while a stream is in flight: the stream
  completes on the old runtime, the new model and key work after, the old key is refused, and
  ``x-mpr-config`` / ``/ready`` name the new file's hash;
* an invalid file (bad YAML, schema errors) is refused with every error and the old config serves;
* SIGHUP does the same as the route (an invalid file: the errors are logged);
* the admin route needs an admin key (401 without or with a client key; 403 when none is set);
* ``--workers 2``: a reload through either worker, or a SIGHUP to the supervisor, reaches both.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.helpers import routes_for, sse_events
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess

CHAT = "/v1/chat/completions"
ADMIN = {"authorization": "Bearer admin-secret"}
SLOW_PROMPT = " ".join(f"word{i}" for i in range(24))


def _tree(target_url: str, keys: list[str], extra_targets: list[dict[str, Any]] | None = None, admin: list[str] | None = None) -> dict[str, Any]:
    tree = routes_for(target_url, None, server={"api_keys": keys, "admin_keys": ["admin-secret"] if admin is None else admin})
    tree["targets"] += extra_targets or []
    return tree


def _second(target_url: str) -> dict[str, Any]:
    return {"name": "second-model", "endpoints": [target_url], "upstream_model": "second-upstream", "timeout_s": 10}


def _chat(url: str, key: str, model: str = "test-model") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}]}
    return httpx.post(url + CHAT, json=body, headers={"authorization": f"Bearer {key}"}, timeout=10)


def _ready_hash(url: str) -> str:
    return str(httpx.get(url + "/ready", timeout=5).json()["config"]["hash"])


class _Stream(threading.Thread):
    """One slow streamed chat completion with a client key, in a thread."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.first_bytes = threading.Event()
        self.raw = b""
        self.status = 0
        self.config_header: str | None = None
        self.error: str | None = None

    def run(self) -> None:
        body = {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": SLOW_PROMPT}]}
        try:
            with httpx.Client(timeout=30) as client, client.stream(
                "POST", self.url + CHAT, json=body, headers={"authorization": f"Bearer {self.key}"}
            ) as r:
                self.status, self.config_header = r.status_code, r.headers.get("x-mpr-config")
                for chunk in r.iter_raw():
                    self.raw += chunk
                    self.first_bytes.set()
        except httpx.HTTPError as exc:
            self.error = type(exc).__name__
        finally:
            self.first_bytes.set()

    @property
    def complete(self) -> bool:
        events = sse_events(self.raw)
        return self.status == 200 and len(events) > 5 and events[-1] == b"[DONE]" and not any(e.startswith(b'{"error"') for e in events)


def _wait_for(predicate: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def target() -> Any:
    with FakeOpenAI() as fake:
        fake.behave("target-model", Behaviour(chunks=24, chunk_delay_s=0.12))  # a ~3 s stream
        yield fake


@pytest.mark.timeout(60)
def test_reload_adds_a_target_and_rotates_the_key_while_a_stream_finishes(tmp_path: Path, target: FakeOpenAI) -> None:
    with GatewayProcess(_tree(target.base_url, ["key-old"]), tmp_path) as gw:
        before = _chat(gw.url, "key-old")
        assert before.status_code == 200
        old_hash = before.headers["x-mpr-config"]
        assert _ready_hash(gw.url) == old_hash
        stream = _Stream(gw.url, "key-old")
        stream.start()
        assert stream.first_bytes.wait(10)

        gw.rewrite(_tree(target.base_url, ["key-new"], [_second(target.base_url)]))
        reloaded = httpx.post(gw.url + "/admin/reload", headers=ADMIN, timeout=10)
        assert reloaded.status_code == 200, reloaded.text
        body = reloaded.json()
        new_hash = body["config"]["hash"]
        assert body["status"] == "reloaded" and body["previous"] == old_hash and new_hash != old_hash
        assert body["config"]["source"] == str(gw.config_path.resolve()) and body["restart_required"] == []
        in_flight_when_reloaded = stream.is_alive()

        refused = _chat(gw.url, "key-old")
        new_key = _chat(gw.url, "key-new")
        new_model = _chat(gw.url, "key-new", "second-model")
        stream.join(15)
        assert _wait_for(lambda: f"config {old_hash} retired" in gw.logs(), 5)
        logs = gw.logs()
        ready_hash = _ready_hash(gw.url)
    assert in_flight_when_reloaded
    assert stream.complete, (stream.status, stream.error, stream.raw[-300:])  # finished on the old runtime, not cut
    assert stream.config_header == old_hash
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert new_key.status_code == 200 and new_key.headers["x-mpr-config"] == new_hash
    assert new_model.status_code == 200 and new_model.json()["model"] == "second-upstream"
    assert ready_hash == new_hash
    assert f"config {new_hash} loaded from {gw.config_path.resolve()} (was {old_hash}; POST /admin/reload)" in logs
    # the old runtime was stopped only after the stream: its retirement comes after the stream's access log line
    assert logs.index(f"config {old_hash} retired") > logs.index('"stream":true')


@pytest.mark.timeout(60)
def test_an_invalid_file_is_refused_with_every_error_and_the_old_config_serves(tmp_path: Path, target: FakeOpenAI) -> None:
    with GatewayProcess(_tree(target.base_url, []), tmp_path) as gw:
        old_hash = _chat(gw.url, "any").headers["x-mpr-config"]
        gw.config_path.write_text("server: {port: 8000\ntargets: [")
        bad_yaml = httpx.post(gw.url + "/admin/reload", headers=ADMIN, timeout=10)
        broken = _tree(target.base_url, [])
        broken["server"]["port"] = "not-a-port"
        broken["targets"][0]["endpoints"] = ["http://127.0.0.1:1/no-v1"]
        gw.rewrite(broken)
        bad_schema = httpx.post(gw.url + "/admin/reload", headers=ADMIN, timeout=10)
        after = _chat(gw.url, "any")
        ready_hash = _ready_hash(gw.url)
    assert bad_yaml.status_code == 400
    error = bad_yaml.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_config" and "param" in error
    assert [e["path"] for e in bad_yaml.json()["errors"]] == ["<yaml>"]
    assert bad_schema.status_code == 400
    paths = [e["path"] for e in bad_schema.json()["errors"]]
    assert "server.port" in paths and "targets[0].endpoints[0]" in paths, paths  # every error, with its key path
    assert "server.port" in bad_schema.json()["error"]["message"]
    assert after.status_code == 200 and after.headers["x-mpr-config"] == old_hash
    assert ready_hash == old_hash


@pytest.mark.timeout(60)
def test_sighup_reloads_like_the_route_and_logs_a_refusal(tmp_path: Path, target: FakeOpenAI) -> None:
    with GatewayProcess(_tree(target.base_url, []), tmp_path) as gw:
        assert gw.proc is not None
        old_hash = _chat(gw.url, "any").headers["x-mpr-config"]
        assert _chat(gw.url, "any", "second-model").status_code == 404
        gw.rewrite(_tree(target.base_url, [], [_second(target.base_url)]))
        gw.proc.send_signal(signal.SIGHUP)
        assert _wait_for(lambda: _chat(gw.url, "any", "second-model").status_code == 200)
        new_hash = _chat(gw.url, "any").headers["x-mpr-config"]
        gw.config_path.write_text("targets: [{name: x}]\n")
        gw.proc.send_signal(signal.SIGHUP)
        assert _wait_for(lambda: "refused" in gw.logs(), 5)
        still = _chat(gw.url, "any", "second-model")
        alive = gw.proc.poll() is None
        logs = gw.logs()
    assert new_hash != old_hash
    assert f"config {new_hash} loaded from" in logs and "(was " + old_hash + "; SIGHUP)" in logs
    assert alive and still.status_code == 200 and still.headers["x-mpr-config"] == new_hash
    assert "config reload (SIGHUP) refused, still serving " + new_hash in logs
    assert "targets[0].endpoints" in logs  # the errors, with their key paths


@pytest.mark.timeout(60)
def test_the_admin_route_needs_an_admin_key(tmp_path: Path, target: FakeOpenAI) -> None:
    with GatewayProcess(_tree(target.base_url, ["client-key"]), tmp_path) as gw:
        missing = httpx.post(gw.url + "/admin/reload", timeout=5)
        client_key = httpx.post(gw.url + "/admin/reload", headers={"authorization": "Bearer client-key"}, timeout=5)
        admin_as_client = _chat(gw.url, "admin-secret")
    with GatewayProcess(_tree(target.base_url, [], admin=[]), tmp_path) as gw:
        none_set = httpx.post(gw.url + "/admin/reload", headers=ADMIN, timeout=5)
    with GatewayProcess(_tree(target.base_url, [], admin=[]), tmp_path, env={"MPR_ADMIN_KEY": "from-env"}) as gw:
        from_env = httpx.post(gw.url + "/admin/reload", headers={"authorization": "Bearer from-env"}, timeout=10)
    for r in (missing, client_key):
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert admin_as_client.status_code == 401  # an admin key is not a client key either
    assert none_set.status_code == 403 and none_set.json()["error"]["code"] == "admin_disabled"
    assert set(none_set.json()["error"]) == {"message", "type", "param", "code"}
    assert from_env.status_code == 200 and from_env.json()["status"] == "reloaded"


@pytest.mark.timeout(90)
def test_a_reload_reaches_every_worker(tmp_path: Path, target: FakeOpenAI) -> None:
    with GatewayProcess(_tree(target.base_url, []), tmp_path, workers=2) as gw:
        assert gw.proc is not None
        # both workers serving before the file changes (one still starting would read the new file)
        assert _wait_for(lambda: 'mpr_server_workers{state="live"} 2.0' in httpx.get(gw.url + "/metrics", timeout=5).text, 30)
        old_hash = _ready_hash(gw.url)
        gw.rewrite(_tree(target.base_url, [], [_second(target.base_url)]))
        told = httpx.post(gw.url + "/admin/reload", headers=ADMIN, timeout=10)
        new_hash = told.json()["config"]["hash"]
        # every new connection lands on either worker: all of them must end up on the new hash
        assert _wait_for(lambda: {_ready_hash(gw.url) for _ in range(16)} == {new_hash})
        models = [_chat(gw.url, "any", "second-model").status_code for _ in range(12)]
        gw.rewrite(_tree(target.base_url, [], [_second(target.base_url), {**_second(target.base_url), "name": "third-model"}]))
        gw.proc.send_signal(signal.SIGHUP)
        assert _wait_for(lambda: len({_ready_hash(gw.url) for _ in range(16)} - {new_hash}) == 1 and new_hash not in {_ready_hash(gw.url) for _ in range(16)})
        third = [_chat(gw.url, "any", "third-model").status_code for _ in range(12)]
        gw.config_path.write_text("server: [")
        refused = httpx.post(gw.url + "/admin/reload", headers=ADMIN, timeout=10)
        workers_alive = len(__import__("psutil").Process(gw.proc.pid).children())
    assert told.status_code == 200, told.text
    assert told.json()["status"] == "signalled" and told.json()["previous"] == old_hash and new_hash != old_hash
    assert set(models) == {200}, models
    assert set(third) == {200}, third
    assert refused.status_code == 400 and refused.json()["errors"][0]["path"] == "<yaml>"
    assert workers_alive == 2
    assert gw.proc.returncode == 0
