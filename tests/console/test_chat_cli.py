"""``mpr-gateway chat`` driven through its stdin against a real gateway with fake peers: the
history goes with each turn, the refinement is shown (original, refined, stages, description,
latencies), streaming and not, the in-chat commands, a refused key, and Ctrl-D (end of input)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.gateway.conftest import CLEANED, DESCRIBED, DIRTY, PARAPHRASED, refining, start_gateway
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import REPO, GatewayProcess, clean_env, routes

KEY = "sk-chat-test"
ADMIN = "adm-chat-test"


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = routes(fake.base_url, fake.base_url, server={"api_keys": [KEY], "admin_keys": [ADMIN], "probe_interval_s": 0.5})
    gw = start_gateway(tmp_path_factory, config)
    yield gw
    gw.stop()


def chat(gateway: GatewayProcess, lines: list[str], *args: str, key: str | None = KEY) -> subprocess.CompletedProcess[str]:
    """Run ``mpr-gateway chat`` with ``lines`` on its stdin (then end of input, as Ctrl-D)."""
    env = {k: v for k, v in clean_env().items() if k not in ("OPENAI_API_KEY", "MPR_API_KEY")}
    if key is not None:
        env["MPR_API_KEY"] = key
    command = [sys.executable, "-m", "gateway", "chat", "--url", gateway.url, *args]
    stdin = "".join(line + "\n" for line in lines)
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, cwd=REPO, env=env)


def test_two_turns_carry_the_history_and_show_the_refinement(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    refining(fake)
    result = chat(gateway, [DIRTY, "and how many people live there?"], "--model", "test-model")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b[" not in out, "no colours when stdout is not a terminal"
    assert "refinement: describer,paraphraser" in out
    assert f"original  {DIRTY}" in out
    assert f"refined   {PARAPHRASED}" in out
    assert f"context   {DESCRIBED}" in out
    assert "paraphraser  applied" in out and "describer    applied" in out
    assert "cleaner      accepted  superseded by another rewrite" in out
    assert f"assistant> echo: {PARAPHRASED}" in out, "the streamed answer"
    assert out.count("refine ") >= 2 and "first token " in out and "first token -" not in out
    sent = [r.body for r in fake.requests_for("target-model")]
    assert len(sent) == 2 and all(body["stream"] is True for body in sent)
    first, second = sent
    assert [m["role"] for m in second["messages"]][-3:] == ["user", "assistant", "user"]
    history = [m for m in second["messages"] if m["role"] != "system"]
    assert [m["role"] for m in history] == ["user", "assistant", "user"]  # the gateway presents the first turn as it was sent
    assert history[1] == {"role": "assistant", "content": f"echo: {PARAPHRASED}"}
    assert history[2] == {"role": "user", "content": "and how many people live there?"}
    assert "mpr" not in first and "mpr" not in second


def test_rejected_and_failed_stages_say_why(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    refining(fake, paraphrased="Tell me a story about dragons and their treasure in the mountains", described=None)
    fake.behave("describer", Behaviour(mode="status", status=500))
    result = chat(gateway, [DIRTY], "--model", "test-model", "--no-stream")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"refined   {CLEANED}" in out
    assert "cleaner      applied" in out
    assert "paraphraser  rejected  drift too high" in out
    assert "describer    failed    stage failed: " in out
    assert "first token -" in out, "no stream: no first token time"


def test_no_stream_answers_whole(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    result = chat(gateway, ["What is the capital of France and how big is it?"], "--model", "test-model", "--no-stream")
    assert result.returncode == 0, result.stderr
    assert "refinement: skipped;reason=clean (skip gate: clean)" in result.stdout
    assert "refined   (unchanged)" in result.stdout
    assert "assistant> echo: What is the capital of France and how big is it?" in result.stdout
    assert fake.requests_for("target-model")[0].body.get("stream") is False


def test_stages_status_reset_help_and_quit(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    result = chat(gateway, ["/stages", "/status", "/help", "/reset", "/bogus", "/quit", "never sent"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "chatting with test-model" in out, "the first listed model by default"
    for role in ("cleaner", "describer", "paraphraser"):
        assert f"{role:<12} 1/1 up" in out
    assert f"{fake.base_url}  up" in out
    assert "gateway      ready" in out and "target       test-model: 1/1 endpoint(s) up" in out
    assert "/reset    start a new conversation" in out and "new conversation" in out
    assert "error: unknown command /bogus" in out
    assert not fake.requests_for("target-model"), "/quit left before the next line"


def test_status_with_an_admin_key(gateway: GatewayProcess) -> None:
    result = chat(gateway, ["/status"], "--admin-key", ADMIN)
    assert result.returncode == 0, result.stderr
    after = result.stdout.split("you> ", 1)[1]
    assert "error:" not in after and "test-model" in after and "cleaner" in after, after
    refused = chat(gateway, ["/status"], "--admin-key", "adm-wrong")
    assert refused.returncode == 0, refused.stderr
    assert "error: the gateway refused the admin key (401 invalid_api_key)" in refused.stdout


def test_reset_forgets_the_history(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    result = chat(gateway, ["hello there", "/reset", "hello again"], "--model", "test-model")
    assert result.returncode == 0, result.stderr
    second = fake.requests_for("target-model")[1].body["messages"]
    assert [m["content"] for m in second if m["role"] == "user"] == ["hello again"]


def test_a_refused_key_is_a_clear_error(gateway: GatewayProcess) -> None:
    result = chat(gateway, ["hello"], "--key", "sk-wrong")
    assert result.returncode == 2
    assert "error: the gateway refused the API key (401 invalid_api_key)" in result.stderr


def test_no_gateway_is_a_clear_error(gateway: GatewayProcess) -> None:
    result = chat(gateway, ["hello"], "--url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "cannot reach the gateway at http://127.0.0.1:9" in result.stderr


def test_end_of_input_exits_0(gateway: GatewayProcess) -> None:
    result = chat(gateway, [])
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("you>")
