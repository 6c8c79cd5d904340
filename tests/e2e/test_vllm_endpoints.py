"""The Responses API and text completions through the gateway to the real vLLM (CPU) worker.

vLLM serves ``/v1/responses`` and ``/v1/completions`` itself, so the gateway forwards them
natively after refinement; random LoRA weights write nonsense, so drift control rejects every
rewrite and the original text must reach vLLM.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import openai
import pytest

from tests.e2e.gateway_proc import GatewayProcess, e2e_routes
from tests.e2e.worker_proc import ROLES, WorkerProcess

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]

BASE_MODEL = "mpr-tiny-llama"
TYPO_PROMPT = "Waht is teh capitol of Frnace and how big is it?"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _adapters_up(gateway: GatewayProcess) -> bool:
    _, body = gateway.ready()
    return all(any(ep["up"] for ep in body.get("adapters", {}).get(role, [])) for role in ROLES)


@pytest.fixture(scope="module")
def client(vllm_worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    proc = GatewayProcess(e2e_routes(vllm_worker.base_url, BASE_MODEL, "http://127.0.0.1:9/v1"),
                          tmp_path_factory.mktemp("gateway"), _free_port())
    try:
        proc.start()
        deadline = time.monotonic() + 60
        while not _adapters_up(proc):
            assert time.monotonic() < deadline, "the gateway did not see the adapters up"
            time.sleep(0.25)
        yield openai.OpenAI(base_url=proc.url + "/v1", api_key="unused", timeout=180, max_retries=0)
    finally:
        proc.stop()


def _rejected(header: str) -> bool:
    return header.startswith("none;rejected=") or header.startswith("fallback;")


def test_responses_non_streaming(client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(model="tiny", input=TYPO_PROMPT, max_output_tokens=8, temperature=0)
    response = raw.parse()
    assert _rejected(raw.headers["x-mpr-refinement"]), raw.headers["x-mpr-refinement"]
    assert raw.headers["x-mpr-target"] == "tiny"
    assert response.status in ("completed", "incomplete") and response.output_text
    # the id is routed to the target that served it; vLLM keeps no responses unless started with
    # VLLM_ENABLE_RESPONSES_API_STORE=1, so it answers an OpenAI-shaped 404
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_responses_streaming(client: openai.OpenAI) -> None:
    with client.responses.with_streaming_response.create(
        model="tiny", input=[{"role": "user", "content": TYPO_PROMPT}], max_output_tokens=8, temperature=0, stream=True
    ) as raw:
        assert _rejected(raw.headers["x-mpr-refinement"])
        events = list(raw.parse())
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] in ("response.completed", "response.incomplete"), kinds
    assert any(kind == "response.output_text.delta" for kind in kinds), kinds


def test_completions_streaming_and_not(client: openai.OpenAI) -> None:
    raw = client.completions.with_raw_response.create(model="tiny", prompt=TYPO_PROMPT, max_tokens=8, temperature=0)
    completion = raw.parse()
    assert _rejected(raw.headers["x-mpr-refinement"])
    assert completion.model == BASE_MODEL and completion.choices[0].text
    assert completion.usage is not None and completion.usage.completion_tokens == 8

    stream = client.completions.create(model="tiny", prompt=TYPO_PROMPT, max_tokens=8, temperature=0, stream=True)
    text = "".join(chunk.choices[0].text for chunk in stream if chunk.choices)
    assert text
