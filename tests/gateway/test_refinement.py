"""The stage fan-out against fake vLLM workers: concurrency, per-stage timeout, overall deadline,
failing stages dropped while the others apply, drift rejection and the merge's precedence."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.gateway.conftest import (
    CLEANED,
    DESCRIBED,
    DIRTY,
    PARAPHRASED,
    adapters_tree,
    refining,
    start_gateway,
    wait_until,
)
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

STAGE_TIMEOUT_S = 0.6  # cleaner and describer
DEADLINE_S = 1.2  # overall; the paraphraser's own timeout (3 s) is longer, so the deadline cuts it
TIMER_SLACK_MS = 2.0  # uvloop's timers: libuv's millisecond loop clock, cached per loop turn, may fire that much early


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = routes(
        fake.base_url,
        adapters=adapters_tree(
            fake.base_url,
            cleaner={"timeout_s": STAGE_TIMEOUT_S},
            describer={"timeout_s": STAGE_TIMEOUT_S},
            paraphraser={"timeout_s": 3.0},
        ),
        refinement={"deadline_s": DEADLINE_S},
    )
    gw = start_gateway(tmp_path_factory, config)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0, timeout=10) as c:
        yield c


def ask(client: openai.OpenAI, prompt: str = DIRTY, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """(raw response, its ``mpr`` details) for a refined chat call."""
    raw = client.chat.completions.with_raw_response.create(
        model="test-model",
        messages=[{"role": "user", "content": prompt}],
        extra_body={"mpr": {"return_details": True}},
        **kwargs,
    )
    assert raw.http_response.status_code == 200
    return raw, raw.http_response.json()["mpr"]


def forwarded_prompt(fake: FakeOpenAI) -> str:
    (call,) = fake.requests_for("target-model")
    return str(call.body["messages"][-1]["content"])


# -- fan-out -------------------------------------------------------------------------------------


def test_stages_start_together_and_wall_time_is_the_slowest(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    delay = 0.4
    refining(fake, delay_s=delay)
    started = time.monotonic()
    raw, mpr = ask(client)
    elapsed = time.monotonic() - started
    arrivals = sorted(fake.requests_for(role)[0].at for role in ("cleaner", "describer", "paraphraser"))
    assert arrivals[-1] - arrivals[0] < 0.2, "the three stage calls did not start together"
    refine_ms = float(raw.headers["x-mpr-refine-ms"])
    assert delay * 1000 <= refine_ms < 2 * delay * 1000, refine_ms  # ≈ slowest, well under the 1.2 s sum
    assert elapsed < 2 * delay + 0.5
    for stage in mpr["stages"].values():
        assert stage["latency_ms"] >= delay * 1000
    assert raw.headers["x-mpr-refinement"] == "describer,paraphraser"


def test_stage_calls_are_openai_chat_calls_with_the_lora_name(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    ask(client)
    for role in ("cleaner", "describer", "paraphraser"):
        (call,) = fake.requests_for(role)
        assert call.path == "/v1/chat/completions"
        assert call.body["model"] == role
        assert call.body["stream"] is False
        assert call.body["messages"][-1] == {"role": "user", "content": DIRTY}
        assert "authorization" not in {k.lower() for k in call.headers}


# -- failing stages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "error", "reason"),
    [
        (Behaviour(mode="status", status=500), "http_500", "error"),
        (Behaviour(mode="malformed"), "malformed", "error"),
        (Behaviour(mode="reset"), "connect_error", "error"),
        (Behaviour(mode="wrong_type"), "malformed", "error"),
        (Behaviour(reply=lambda _m, _b: ""), None, "empty"),
        (Behaviour(reply=lambda _m, _b: "   \n"), None, "empty"),
    ],
    ids=["http500", "malformed_json", "connection_dropped", "html", "empty", "blank"],
)
def test_a_failing_paraphraser_is_dropped_and_the_others_apply(
    client: openai.OpenAI, fake: FakeOpenAI, behaviour: Behaviour, error: str | None, reason: str
) -> None:
    refining(fake)
    fake.behave("paraphraser", behaviour)
    raw, mpr = ask(client)
    assert raw.headers["x-mpr-refinement"] == "cleaner,describer"
    assert float(raw.headers["x-mpr-refine-ms"]) >= 0
    stage = mpr["stages"]["paraphraser"]
    assert stage["accepted"] is False
    assert stage["error"] == error
    assert stage["reason"] == reason
    assert mpr["refined"] == CLEANED
    assert forwarded_prompt(fake) == CLEANED
    assert raw.parse().choices[0].message.content == f"echo: {CLEANED}"


@pytest.mark.parametrize("role", ["cleaner", "describer"])
def test_other_stages_failing_are_dropped_too(client: openai.OpenAI, fake: FakeOpenAI, role: str) -> None:
    refining(fake)
    fake.behave(role, Behaviour(mode="status", status=503))
    raw, mpr = ask(client)
    assert mpr["stages"][role]["error"] == "http_503"
    assert role not in raw.headers["x-mpr-refinement"].split(",")
    assert "paraphraser" in raw.headers["x-mpr-refinement"].split(",")
    assert forwarded_prompt(fake) == PARAPHRASED


def test_every_stage_failing_falls_back_to_the_original(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    for role in ("cleaner", "describer", "paraphraser"):
        fake.behave(role, Behaviour(mode="status", status=500))
    raw, mpr = ask(client)
    assert raw.headers["x-mpr-refinement"] == "fallback;reason=http_500"
    assert mpr["refined"] == DIRTY
    assert forwarded_prompt(fake) == DIRTY
    assert fake.requests_for("target-model")[0].body["messages"] == [{"role": "user", "content": DIRTY}]


def test_mixed_failures_say_stage_errors(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.behave("cleaner", Behaviour(mode="status", status=500))
    fake.behave("describer", Behaviour(mode="malformed"))
    fake.behave("paraphraser", Behaviour(mode="reset"))
    raw, _ = ask(client)
    assert raw.headers["x-mpr-refinement"] == "fallback;reason=stage_errors"
    assert forwarded_prompt(fake) == DIRTY


def test_a_stage_over_its_timeout_is_dropped(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    fake.behave("cleaner", Behaviour(mode="hang"))
    raw, mpr = ask(client)
    assert mpr["stages"]["cleaner"]["error"] == "timeout"
    assert raw.headers["x-mpr-refinement"] == "describer,paraphraser"
    refine_ms = float(raw.headers["x-mpr-refine-ms"])
    assert STAGE_TIMEOUT_S * 1000 - TIMER_SLACK_MS <= refine_ms < DEADLINE_S * 1000, refine_ms
    assert forwarded_prompt(fake) == PARAPHRASED
    wait_until(lambda: "cleaner" in fake.cancelled, timeout=3)


def test_the_overall_deadline_cuts_a_slow_stage(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    fake.behave("paraphraser", Behaviour(mode="hang"))  # its own timeout (3 s) is past the deadline
    started = time.monotonic()
    raw, mpr = ask(client)
    assert time.monotonic() - started < DEADLINE_S + 1.0
    assert mpr["stages"]["paraphraser"]["error"] == "deadline"
    assert raw.headers["x-mpr-refinement"] == "cleaner,describer"
    refine_ms = float(raw.headers["x-mpr-refine-ms"])
    # the deadline can fire a little before it by perf_counter (a fresh-clone run measured 1199.9)
    assert DEADLINE_S * 1000 - TIMER_SLACK_MS <= refine_ms < DEADLINE_S * 1000 + 600, refine_ms
    assert forwarded_prompt(fake) == CLEANED
    # the cut stage's upstream call is cancelled, not left running
    wait_until(lambda: "paraphraser" in fake.cancelled, timeout=3)


def test_all_stages_past_the_deadline(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    for role in ("cleaner", "describer", "paraphraser"):
        fake.behave(role, Behaviour(mode="hang"))
    raw, mpr = ask(client)
    assert raw.headers["x-mpr-refinement"].startswith("fallback;reason=")
    assert {s["error"] for s in mpr["stages"].values()} <= {"timeout", "deadline"}
    assert forwarded_prompt(fake) == DIRTY
    assert float(raw.headers["x-mpr-refine-ms"]) < DEADLINE_S * 1000 + 600


# -- merge ---------------------------------------------------------------------------------------


def test_paraphrase_wins_over_cleaned_text(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake, described="")
    raw, mpr = ask(client)
    assert mpr["stages"]["cleaner"]["accepted"] is True
    assert mpr["stages"]["paraphraser"]["accepted"] is True
    assert raw.headers["x-mpr-refinement"] == "paraphraser"
    assert forwarded_prompt(fake) == PARAPHRASED


def test_drift_rejects_a_paraphrase_that_changes_the_question(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake, paraphrased="Tell me about the weather on Mars and the rings of Saturn please.")
    raw, mpr = ask(client)
    stage = mpr["stages"]["paraphraser"]
    assert stage["accepted"] is False
    assert stage["reason"] == "drift"
    assert stage["drift"] > 0.18
    assert raw.headers["x-mpr-refinement"] == "cleaner,describer"
    assert forwarded_prompt(fake) == CLEANED


def test_length_bound_rejects_a_padded_rewrite(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake, paraphrased=" ".join([PARAPHRASED] * 3), cleaned="captial")
    raw, mpr = ask(client)
    assert mpr["stages"]["paraphraser"]["reason"] in ("length", "drift")
    assert mpr["stages"]["paraphraser"]["length_ratio"] > 2.4
    assert mpr["stages"]["cleaner"]["accepted"] is False
    assert raw.headers["x-mpr-refinement"] == "describer"
    assert forwarded_prompt(fake) == DIRTY
    system = fake.requests_for("target-model")[0].body["messages"][0]
    assert system == {"role": "system", "content": f"Context: {DESCRIBED}"}


def test_everything_rejected_is_reported(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake, cleaned="Something else entirely, about cooking pasta.", paraphrased="Why is the sky blue at noon?")
    raw, mpr = ask(client, extra_headers={"x-mpr-stages": "cleaner,paraphraser"})
    assert raw.headers["x-mpr-refinement"] == "none;rejected=cleaner,paraphraser"
    assert mpr["refined"] == DIRTY
    assert forwarded_prompt(fake) == DIRTY


def test_describer_limits_are_applied(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    facts = "Paris is the capital of France. France is in Europe. The Seine runs through Paris. The Louvre is a museum."
    refining(fake, described=facts)
    _, mpr = ask(client)
    assert mpr["description"] == "Paris is the capital of France. France is in Europe. The Seine runs through Paris."
    system = fake.requests_for("target-model")[0].body["messages"][0]
    assert system["content"] == f"Context: {mpr['description']}"
