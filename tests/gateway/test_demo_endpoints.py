"""The README's demo (``mpr-gateway demo``, a real process) through the OpenAI SDK: chat,
Responses (plain and streamed), text completions and embeddings answer 200 with the refinement
visible; an unknown route's 404 names the client's path, never the echo's; the admin key the demo
prints opens ``mpr-gateway status``, ``usage`` and the dashboard."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import openai
import pytest

from gateway.demo import ECHO_PREFIX, demo_config
from tests.gateway.conftest import DemoProcess, wait_until
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import REPO, clean_env, free_port

DIRTY = "what is the captial of germeny?"  # not the other demo tests' prompt: its cache entry stays theirs
CLEANED = "what is the capital of germany?"


def _client(demo: DemoProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=demo.url + "/v1", api_key="anything", max_retries=0, timeout=20)


def _admin_key(demo: DemoProcess) -> str:
    given = os.environ.get("MPR_ADMIN_KEY", "").strip()
    if given:
        return given.split(",")[0]
    match = re.search(r"admin key: (demo-[A-Za-z0-9_-]+)", demo.logs())
    assert match, demo.logs()[-2000:]
    return match.group(1)


def test_every_endpoint_the_readme_names_answers_with_refinement_visible(demo: DemoProcess) -> None:
    with _client(demo) as client:
        chat = client.chat.completions.with_raw_response.create(model="demo-echo", messages=[{"role": "user", "content": DIRTY}])
        assert chat.status_code == 200 and chat.headers["x-mpr-refinement"].startswith("cleaner")
        assert CLEANED in (chat.parse().choices[0].message.content or "")

        response = client.responses.with_raw_response.create(model="demo-echo", input=DIRTY)
        assert response.status_code == 200 and response.headers["x-mpr-refinement"].startswith("cleaner")
        assert CLEANED in response.parse().output_text

        with client.responses.with_streaming_response.create(model="demo-echo", input=DIRTY, stream=True) as stream:
            assert stream.status_code == 200 and stream.headers["x-mpr-refinement"].startswith("cleaner")
            events = list(stream.parse())
        assert events[0].type == "response.created" and events[-1].type == "response.completed"
        assert CLEANED in events[-1].response.output_text
        assert CLEANED in "".join(e.delta for e in events if e.type == "response.output_text.delta")

        completion = client.completions.with_raw_response.create(model="demo-echo", prompt=DIRTY)
        assert completion.status_code == 200 and completion.headers["x-mpr-refinement"].startswith("cleaner")
        assert CLEANED in completion.parse().choices[0].text

        streamed = client.completions.create(model="demo-echo", prompt=DIRTY, stream=True)
        assert CLEANED in "".join(c.choices[0].text for c in streamed if c.choices)

        embedding = client.embeddings.with_raw_response.create(model="demo-echo", input=[DIRTY, "second"])
        assert embedding.status_code == 200 and embedding.headers["x-mpr-refinement"] == "off"  # never refined
        vectors = [d.embedding for d in embedding.parse().data]
        assert len(vectors) == 2 and len(vectors[0]) == 16 and vectors[0] != vectors[1]
        again = client.embeddings.create(model="demo-echo", input=DIRTY, encoding_format="float").data[0].embedding
        assert again == pytest.approx(vectors[0], abs=1e-6)  # deterministic; base64 (the SDK's default: float32) and float alike


def test_an_unknown_route_names_the_clients_path_only(demo: DemoProcess) -> None:
    with _client(demo) as client:
        try:
            client.moderations.create(model="demo-echo", input="x")
            raise AssertionError("the echo has no moderations")
        except openai.NotFoundError as exc:
            message = exc.response.json()["error"]["message"]
    assert "/v1/moderations" in message and ECHO_PREFIX not in message and "_demo" not in message
    direct = httpx.post(demo.url + ECHO_PREFIX + "/audio/speech", json={}, timeout=5)
    assert direct.status_code == 404 and "_demo" not in direct.json()["error"]["message"]


def test_status_usage_and_the_dashboard_work_with_the_printed_key(demo: DemoProcess) -> None:
    key = _admin_key(demo)
    with _client(demo) as client:
        client.chat.completions.create(model="demo-echo", messages=[{"role": "user", "content": DIRTY}])
    env = {**os.environ, "MPR_ADMIN_KEY": key}
    status = subprocess.run(
        [sys.executable, "-m", "gateway", "status", "--url", demo.url], capture_output=True, text=True, timeout=60, env=env, cwd=REPO
    )
    assert status.returncode == 0, status.stderr
    assert "demo-echo" in status.stdout and "built-in" in status.stdout
    usage = subprocess.run(
        [sys.executable, "-m", "gateway", "usage", "--url", demo.url], capture_output=True, text=True, timeout=60, env=env, cwd=REPO
    )
    assert usage.returncode == 0, usage.stderr
    assert "demo-echo" in usage.stdout
    page = httpx.get(demo.url + "/admin/", timeout=5)
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    answer = httpx.get(demo.url + "/admin/status", headers={"authorization": f"Bearer {key}"}, timeout=5)
    assert answer.status_code == 200 and answer.json()["stages"][0]["kind"] == "builtin"
    assert httpx.get(demo.url + "/admin/status", timeout=5).status_code == 401  # a key, not open


def test_the_demo_tells_how_to_open_the_dashboard(demo: DemoProcess) -> None:
    log = demo.logs()
    assert f"{demo.url}/admin/" in log and "mpr-gateway status" in log


def test_target_api_says_how_responses_reach_the_target() -> None:
    assert demo_config(8000, None, None).targets[0].api == "chat"  # the echo speaks chat: bridged
    assert demo_config(8000, "https://api.example.com/v1", "m").targets[0].api == "responses"
    bridged = demo_config(8000, "http://10.0.0.5:8080/v1", "m", target_api="chat").targets[0]
    assert bridged.api == "chat" and bridged.base_urls == ["http://10.0.0.5:8080/v1"]
    assert demo_config(8000, None, None, host="10.1.2.3").targets[0].base_urls == [f"http://10.1.2.3:8000{ECHO_PREFIX}"]
    assert demo_config(8000, None, None, host="0.0.0.0").targets[0].base_urls == [f"http://127.0.0.1:8000{ECHO_PREFIX}"]
    assert demo_config(8000, None, None, admin_key="k").server.admin_keys == ["k"]


def test_target_api_needs_a_target() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--target-api", "chat"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 2 and "--target-api needs --target" in result.stderr


def test_a_chat_only_target_gets_responses_bridged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    with FakeOpenAI() as target:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "demo", "--port", str(port), "--target", target.base_url, "--model", "target-model",
             "--target-api", "chat"],
            cwd=REPO, env={**clean_env(), "OPENAI_API_KEY": "sk-test"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: _answers(proc, url), timeout=60, interval=0.2)
            with openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20) as client:
                reply = client.responses.with_raw_response.create(model="target-model", input=DIRTY)
        finally:
            proc.terminate()
            proc.wait(15)
        paths = [r.path for r in target.requests]
    assert reply.status_code == 200 and reply.headers["x-mpr-refinement"].startswith("cleaner")
    assert paths == ["/v1/chat/completions"]  # bridged: the target never saw /v1/responses
    assert target.requests[0].headers.get("Authorization") == "Bearer sk-test"


def _answers(proc: subprocess.Popen[bytes], url: str) -> bool:
    assert proc.poll() is None, "the demo exited"
    try:
        return httpx.get(url + "/health", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False
