"""Conversations against a real prefix cache: the session's vLLM (CPU, automatic prefix caching on
by default) is the target; the three stages are fake peers that really rewrite and describe (the
random LoRAs would be rejected by drift control, and then nothing would change).

A 10-turn conversation and a 10-step tool loop go through the gateway with refinement on and off;
vLLM's own counters (``vllm:prefix_cache_queries`` / ``_hits``, in prompt tokens) give each run's
hit rate. Refinement on must keep at least 90% of the hit rate of refinement off. For scale, the
same conversation is also sent straight to vLLM the way the gateway shaped it before conversations
were handled (the context merged into the first system message, earlier turns raw): printed, and
checked to be worse.

The client keeps fixed assistant texts in its history (not the random model's words, whose
detokenize/retokenize round trip is no business of the gateway's); every run opens with its own
session line, so no run reuses another's cache blocks.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.gateway_proc import GatewayProcess
from tests.e2e.test_vllm_e2e import BASE_MODEL, _free_port, _wait_for
from tests.e2e.worker_proc import ROLES, WorkerProcess
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import REPO

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]

# (typed, cleaned, paraphrased, described): typos the skip gate catches, rewrites drift control keeps
TURNS = [
    ("waht is teh capital of france", "what is the capital of france", "What is the capital of France?", "Paris is the capital of France."),
    ("how big is tht city", "how big is that city", "How big is that city?", "Paris has about two million people."),
    ("whcih river runs thruogh it", "which river runs through it", "Which river runs through it?", "The Seine runs through Paris."),
    ("is teh river long", "is the river long", "Is the river long?", "The Seine is about 780 km long."),
    ("wher does it end", "where does it end", "Where does it end?", "The Seine ends at the English Channel."),
    ("waht about the louvre", "what about the louvre", "What about the Louvre?", "The Louvre is a museum in Paris."),
    ("how old is teh museum", "how old is the museum", "How old is the museum?", "The Louvre opened in 1793."),
    ("whta is its most famous paintng", "what is its most famous painting", "What is its most famous painting?", "The Mona Lisa hangs in the Louvre."),
    ("who paintd it", "who painted it", "Who painted it?", "Leonardo da Vinci painted the Mona Lisa."),
    ("wehn did he live", "when did he live", "When did he live?", "Leonardo lived from 1452 to 1519."),
]
BY_TEXT = {typed: rest for typed, *rest in TURNS}
ROLE_INDEX = {"cleaner": 0, "paraphraser": 1, "describer": 2}
TOOL_STEPS = 10


def _stage_reply(model: str, body: dict[str, Any]) -> str:
    return BY_TEXT[body["messages"][-1]["content"]][ROLE_INDEX[model]]


@pytest.fixture(scope="module")
def stages() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        for role in ROLES:
            fake.behave(role, Behaviour(reply=_stage_reply))
        yield fake


@pytest.fixture(scope="module")
def gateway(vllm_worker: WorkerProcess, stages: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    target = {"endpoints": [vllm_worker.base_url], "upstream_model": BASE_MODEL, "timeout_s": 120, "cooldown_s": 1}
    routes = {
        "server": {"host": "127.0.0.1", "port": 0, "probe_interval_s": 0.5},
        "targets": [{"name": "refined", **target}, {"name": "off", "refine": False, **target}],
        "adapters": {
            role: {"endpoints": [stages.base_url], "model": role, "prompt": str(REPO / "lora_adapters" / role / "prompt.md"), "timeout_s": 10}
            for role in ROLES
        },
        "refinement": {"deadline_s": 10, "stages": list(ROLES), "cache": {"enabled": False}},
    }
    proc = GatewayProcess(routes, tmp_path_factory.mktemp("gateway-prefix"), _free_port())
    try:
        proc.start()
        _wait_for(lambda: all(ep["up"] for eps in proc.ready()[1]["adapters"].values() for ep in eps), 30, "the stages up")
        yield proc
    finally:
        proc.stop()


def _prefix_counters(worker: WorkerProcess) -> tuple[float, float]:
    """(queries, hits) in prompt tokens, summed over vLLM's label sets."""
    text = httpx.get(worker.url + "/metrics", timeout=10).text
    totals = {"queries": 0.0, "hits": 0.0}
    for kind in totals:
        for match in re.finditer(rf"^vllm:prefix_cache_{kind}_total(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M):
            totals[kind] += float(match.group(1))
    return totals["queries"], totals["hits"]


class HitRate:
    """The prefix-cache hit rate of the requests sent inside the ``with`` block."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.rate = 0.0

    def __enter__(self) -> HitRate:
        self.before = _prefix_counters(self.worker)
        return self

    def __exit__(self, *exc: object) -> None:
        queries, hits = _prefix_counters(self.worker)
        asked = queries - self.before[0]
        assert asked > 0, "vLLM counted no prefix-cache queries: is prefix caching off?"
        self.rate = (hits - self.before[1]) / asked


def _send(url: str, model: str, messages: list[dict[str, Any]]) -> httpx.Response:
    body = {"model": model, "messages": messages, "max_tokens": 2, "temperature": 0.0}
    response = httpx.post(url + "/v1/chat/completions", json=body, timeout=180)
    assert response.status_code == 200, response.text
    return response


def _system() -> dict[str, str]:
    return {"role": "system", "content": f"Session {uuid.uuid4().hex[:12]}. You answer questions about Paris."}


def _conversation(url: str, model: str, shape_before: bool = False) -> None:
    """Ten turns, the client keeping its own (raw) history. ``shape_before``: send straight to
    vLLM what the gateway sent before conversations were handled."""
    history: list[dict[str, Any]] = [_system()]
    for k, (typed, _, paraphrased, described) in enumerate(TURNS, 1):
        history.append({"role": "user", "content": typed})
        if shape_before:
            first = {**history[0], "content": f"{history[0]['content']}\n\nContext: {described}"}
            _send(url, model, [first, *history[1:-1], {"role": "user", "content": paraphrased}])
        else:
            _send(url, model, history)
        history.append({"role": "assistant", "content": f"Answer {k}."})


def _tool_loop(url: str, model: str) -> None:
    """One user turn, then ten tool steps (assistant tool call, tool result) of an agent."""
    messages: list[dict[str, Any]] = [_system(), {"role": "user", "content": TURNS[7][0]}]
    _send(url, model, messages)
    for step in range(TOOL_STEPS):
        call = {"id": f"call_{step}", "type": "function", "function": {"name": "search", "arguments": f'{{"page": {step}}}'}}
        messages += [
            {"role": "assistant", "content": f"Looking at page {step}.", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": f"Page {step}: the painting is in room 711."},
        ]
        _send(url, model, messages)


def _stage_calls(stages: FakeOpenAI) -> int:
    return sum(len(stages.requests_for(role)) for role in ROLES)


def test_refinement_keeps_the_prefix_cache_hit_rate(vllm_worker: WorkerProcess, gateway: GatewayProcess, stages: FakeOpenAI) -> None:
    rates: dict[str, float] = {}
    for name, run in (
        ("conversation, refinement off", lambda: _conversation(gateway.url, "off")),
        ("conversation, refinement on", lambda: _conversation(gateway.url, "refined")),
        ("conversation, as shaped before", lambda: _conversation(vllm_worker.url, BASE_MODEL, shape_before=True)),
        ("tool loop, refinement off", lambda: _tool_loop(gateway.url, "off")),
        ("tool loop, refinement on", lambda: _tool_loop(gateway.url, "refined")),
    ):
        calls = _stage_calls(stages)
        with HitRate(vllm_worker) as measured:
            run()
        rates[name] = measured.rate
        if name == "conversation, refinement on":
            assert _stage_calls(stages) - calls == 3 * len(TURNS)  # each turn refined once
        if name == "tool loop, refinement on":
            assert _stage_calls(stages) - calls == 3  # the user turn only; tool steps call no stage
    print("\nprefix-cache hit rate (vLLM's counters, prompt tokens):")
    for name, rate in rates.items():
        print(f"  {name:32s} {rate:6.1%}")
    on, off = rates["conversation, refinement on"], rates["conversation, refinement off"]
    print(f"  conversation: on/off = {on / off:.2f}; tool loop: on/off = {rates['tool loop, refinement on'] / rates['tool loop, refinement off']:.2f}")
    assert on >= 0.9 * off, rates
    assert rates["tool loop, refinement on"] >= 0.9 * rates["tool loop, refinement off"], rates
    assert rates["conversation, as shaped before"] < on, rates
