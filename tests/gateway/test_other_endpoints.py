"""``/v1/completions`` (refined like chat), ``/v1/embeddings`` (never refined) and the ``/v1/*``
pass-through, through the real OpenAI SDK against a gateway subprocess and a fake target; bodies
checked against the OpenAI spec."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Callable

import httpx
import openai
import pytest

from tests.gateway.conftest import CLEAN, CLEANED, DIRTY, PARAPHRASED, OpenAPISchemas, dead_url, refining, start_gateway, wait_until
from tests.support.fake_openai import Behaviour, FakeOpenAI, Recorded
from tests.support.gateway_proc import GatewayProcess, routes


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = routes(fake.base_url, fake.base_url)
    config["targets"][0]["passthrough"] = ["/v1/relay/*"]  # an operator-opened path (no keys: everyone's)
    config["targets"].append({"name": "plain-model", "endpoints": [fake.base_url]})  # no upstream rename
    config["targets"].append({"name": "dead-model", "endpoints": [dead_url()], "connect_timeout_s": 1})
    gw = start_gateway(tmp_path_factory, config)
    yield gw
    gw.stop()


class SentBodies:
    """The request bodies the SDK put on the wire (an httpx event hook)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx.Request) -> None:
        self.bodies.append(request.read())


@pytest.fixture(scope="module")
def sent() -> SentBodies:
    return SentBodies()


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess, sent: SentBodies) -> Iterator[openai.OpenAI]:
    http = httpx.Client(event_hooks={"request": [sent]}, timeout=10)
    with openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0, http_client=http) as c:
        yield c


def only_call(fake: FakeOpenAI, path: str) -> Recorded:
    calls = [r for r in fake.requests if r.path == path]
    assert len(calls) == 1, [r.path for r in fake.requests]
    return calls[0]


def stage_calls(fake: FakeOpenAI) -> dict[str, int]:
    return {role: len(fake.requests_for(role)) for role in ("cleaner", "describer", "paraphraser")}


# -- /v1/completions -------------------------------------------------------------------------------


def test_completion_prompt_is_refined_without_the_describer(client: openai.OpenAI, fake: FakeOpenAI, openapi: OpenAPISchemas) -> None:
    refining(fake)
    raw = client.completions.with_raw_response.create(model="test-model", prompt=DIRTY, max_tokens=20)
    assert raw.headers["x-mpr-refinement"] == "paraphraser"
    assert float(raw.headers["x-mpr-refine-ms"]) > 0
    openapi.validate(json.loads(raw.http_response.content), "CreateCompletionResponse")
    completion = raw.parse()
    assert completion.choices[0].text == f"echo: {PARAPHRASED}"
    call = only_call(fake, "/v1/completions")
    assert call.body == {"model": "target-model", "prompt": PARAPHRASED, "max_tokens": 20}
    assert stage_calls(fake) == {"cleaner": 1, "describer": 0, "paraphraser": 1}  # no context for a continuation


def test_completion_stream_relays_the_target_chunks(client: openai.OpenAI, fake: FakeOpenAI, openapi: OpenAPISchemas) -> None:
    refining(fake)
    raw = client.completions.with_raw_response.create(model="test-model", prompt=DIRTY, stream=True)
    assert raw.headers["x-mpr-refinement"] == "paraphraser"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    assert "".join(c.choices[0].text for c in chunks if c.choices) == f"echo: {PARAPHRASED}"
    final = chunks[-1].model_dump(exclude_unset=True)
    openapi.validate(final, "CreateCompletionResponse")  # the spec's finish_reason is not nullable: the last chunk
    assert final["choices"][0]["finish_reason"] == "stop"
    assert all(c.usage is None for c in chunks)
    assert only_call(fake, "/v1/completions").body["stream"] is True


def test_completion_controls_stages_details_and_mpr_removed(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    raw = client.completions.with_raw_response.create(
        model="test-model", prompt=DIRTY, extra_body={"mpr": {"stages": ["cleaner"], "return_details": True}}
    )
    assert raw.headers["x-mpr-refinement"] == "cleaner"
    details = json.loads(raw.http_response.content)["mpr"]
    assert details["original"] == DIRTY and details["refined"] == CLEANED and details["mode"] == "apply"
    call = only_call(fake, "/v1/completions")
    assert "mpr" not in call.body and call.body["prompt"] == CLEANED


def test_completion_refine_off_forwards_the_client_bytes(client: openai.OpenAI, fake: FakeOpenAI, sent: SentBodies) -> None:
    refining(fake)
    raw = client.completions.with_raw_response.create(
        model="plain-model", prompt=DIRTY, extra_headers={"x-mpr-refine": "off"}
    )
    assert raw.headers["x-mpr-refinement"] == "off"
    assert only_call(fake, "/v1/completions").raw == sent.bodies[-1]
    assert stage_calls(fake) == {"cleaner": 0, "describer": 0, "paraphraser": 0}


def test_completion_shadow_mode_forwards_the_original(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    raw = client.completions.with_raw_response.create(model="test-model", prompt=DIRTY, extra_headers={"x-mpr-mode": "shadow"})
    assert raw.headers["x-mpr-refinement"] == "shadow;paraphraser"
    assert only_call(fake, "/v1/completions").body["prompt"] == DIRTY


@pytest.mark.parametrize("prompt", [[DIRTY, CLEAN], [1212, 318], [[1212, 318], [13]]], ids=["strings", "tokens", "token-arrays"])
def test_completion_prompt_lists_are_forwarded_unrefined(client: openai.OpenAI, fake: FakeOpenAI, prompt: Any) -> None:
    refining(fake)
    raw = client.completions.with_raw_response.create(model="test-model", prompt=prompt)
    assert raw.headers["x-mpr-refinement"] == "skipped;reason=unsupported_prompt"
    assert only_call(fake, "/v1/completions").body["prompt"] == prompt
    assert stage_calls(fake) == {"cleaner": 0, "describer": 0, "paraphraser": 0}


@pytest.mark.parametrize("prompt", [5, {"text": "hi"}, [DIRTY, 3], [[]], True])
def test_completion_bad_prompt_type_is_a_400(gateway: GatewayProcess, fake: FakeOpenAI, assert_openai_error: Callable[..., Any], prompt: Any) -> None:
    r = httpx.post(gateway.base_url + "/completions", json={"model": "test-model", "prompt": prompt}, timeout=10)
    error = assert_openai_error(r, 400, error_type="invalid_request_error")
    assert error["param"] == "prompt"
    assert r.headers["x-mpr-refinement"] == "off"
    assert fake.requests == []


# -- /v1/embeddings --------------------------------------------------------------------------------


def test_embeddings_reach_the_target_byte_identical_and_unrefined(client: openai.OpenAI, fake: FakeOpenAI, sent: SentBodies) -> None:
    refining(fake)
    raw = client.embeddings.with_raw_response.create(model="plain-model", input=[DIRTY, "second"])
    assert raw.headers["x-mpr-refinement"] == "off"
    assert raw.headers["x-mpr-refine-ms"] == "0.0"
    result = raw.parse()
    assert [list(d.embedding) for d in result.data] == [[0.25, -0.5, 1.0]] * 2
    assert only_call(fake, "/v1/embeddings").raw == sent.bodies[-1]
    assert stage_calls(fake) == {"cleaner": 0, "describer": 0, "paraphraser": 0}


def test_embeddings_follow_the_model_route_and_match_the_spec(client: openai.OpenAI, fake: FakeOpenAI, openapi: OpenAPISchemas) -> None:
    raw = client.embeddings.with_raw_response.create(model="test-model", input=DIRTY, encoding_format="float")
    openapi.validate(json.loads(raw.http_response.content), "CreateEmbeddingResponse")
    assert only_call(fake, "/v1/embeddings").body == {"model": "target-model", "input": DIRTY, "encoding_format": "float"}


# -- the /v1/* pass-through ------------------------------------------------------------------------


def test_moderations_pass_through(client: openai.OpenAI, fake: FakeOpenAI, gateway: GatewayProcess, openapi: OpenAPISchemas) -> None:
    raw = client.moderations.with_raw_response.create(model="test-model", input=DIRTY)
    assert raw.headers["x-mpr-refinement"] == "off"
    openapi.validate(json.loads(raw.http_response.content), "CreateModerationResponse")
    assert raw.parse().results[0].flagged is False
    assert only_call(fake, "/v1/moderations").body == {"model": "target-model", "input": DIRTY}
    metrics = httpx.get(gateway.url + "/metrics", timeout=5).text
    assert 'route="/v1/{passthrough}"' in metrics  # one bounded label for every pass-through path
    assert 'route="/v1/moderations"' not in metrics


def test_streaming_pass_through_relays_the_bytes(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    body = {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": DIRTY}]}
    with httpx.stream("POST", gateway.base_url + "/relay/chat", json=body, timeout=10) as r:
        data = r.read()
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert data.startswith(b"data: {") and data.endswith(b"data: [DONE]\n\n")  # the target's bytes
    call = only_call(fake, "/v1/relay/chat")
    assert call.body["stream"] is True and call.body["messages"][0]["content"] == DIRTY  # not refined
    assert stage_calls(fake) == {"cleaner": 0, "describer": 0, "paraphraser": 0}


@pytest.mark.parametrize(
    ("content_type", "body"), [("audio/mpeg", b"\xff\xfb\x90audio"), ("text/plain; charset=utf-8", b"plain words")]
)
def test_pass_through_relays_any_answer_as_it_is(gateway: GatewayProcess, fake: FakeOpenAI, content_type: str, body: bytes) -> None:
    fake.behave("target-model", Behaviour(mode="status", status=200, body=body, headers={"content-type": content_type}))
    r = httpx.post(gateway.base_url + "/relay/chat", json={"model": "test-model", "input": "hi"}, timeout=10)
    assert r.status_code == 200 and r.content == body
    assert r.headers["content-type"] == content_type
    assert r.headers["x-mpr-refinement"] == "off"


@pytest.mark.parametrize("path", ["/embeddings", "/moderations", "/completions"])
def test_a_client_that_leaves_cancels_the_target_call(gateway: GatewayProcess, fake: FakeOpenAI, path: str) -> None:
    fake.behave("target-model", Behaviour(mode="hang"))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.base_url + path, json={"model": "test-model", "input": "hi", "prompt": "hi"}, timeout=0.5)
    wait_until(lambda: "target-model" in fake.cancelled, timeout=5)


def test_unknown_model_is_a_404_on_every_endpoint(client: openai.OpenAI, gateway: GatewayProcess, assert_openai_error: Callable[..., Any]) -> None:
    for path, extra in (("/completions", {"prompt": "hi"}), ("/embeddings", {"input": "hi"}), ("/moderations", {"input": "hi"})):
        r = httpx.post(gateway.base_url + path, json={"model": "nope", **extra}, timeout=10)
        assert assert_openai_error(r, 404, code="model_not_found")["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        client.moderations.create(model="nope", input="hi")


def test_a_route_the_target_does_not_serve_is_an_openai_404(client: openai.OpenAI, gateway: GatewayProcess, assert_openai_error: Callable[..., Any]) -> None:
    r = httpx.post(gateway.base_url + "/rerank", json={"model": "test-model", "query": "q", "documents": ["a"]}, timeout=10)
    assert "does not serve" in assert_openai_error(r, 404)["message"]
    with pytest.raises(openai.NotFoundError):
        client.post("/rerank", body={"model": "test-model", "query": "q"}, cast_to=httpx.Response)


def test_an_unreachable_target_is_a_502(gateway: GatewayProcess, assert_openai_error: Callable[..., Any]) -> None:
    r = httpx.post(gateway.base_url + "/moderations", json={"model": "dead-model", "input": "hi"}, timeout=10)
    assert_openai_error(r, 502, code="upstream_unreachable")
    assert r.headers["x-mpr-refinement"] == "off"


def test_multipart_is_a_415(gateway: GatewayProcess, fake: FakeOpenAI, assert_openai_error: Callable[..., Any]) -> None:
    r = httpx.post(gateway.base_url + "/audio/transcriptions", data={"model": "test-model"}, files={"file": ("a.wav", b"RIFF")}, timeout=10)
    assert_openai_error(r, 415, code="unsupported_media_type")
    assert fake.requests == []


def test_gateway_routes_are_not_taken_by_the_pass_through(gateway: GatewayProcess, fake: FakeOpenAI, assert_openai_error: Callable[..., Any]) -> None:
    r = httpx.post(gateway.base_url + "/refine", json={"prompt": CLEAN}, timeout=10)
    assert r.status_code == 200 and r.json()["object"] == "mpr.refinement"
    assert_openai_error(httpx.post(gateway.base_url + "/models", json={"model": "test-model"}, timeout=10), 405)
    assert fake.requests == []
