"""Spans of the non-chat proxied endpoints: the target span says what was called, and the
pass-through's SERVER span carries the bounded route template."""

from __future__ import annotations

import httpx
import pytest

from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess
from tests.support.otlp_receiver import OtlpHttpReceiver
from tests.telemetry.conftest import complete_trace, one, trace_of


@pytest.mark.parametrize(
    ("path", "body", "server", "target", "route"),
    [
        ("/completions", {"prompt": "hello"}, "POST /v1/completions", "text_completion target-model", "/v1/completions"),
        ("/embeddings", {"input": "hello"}, "POST /v1/embeddings", "embeddings target-model", "/v1/embeddings"),
        ("/moderations", {"input": "hello"}, "POST /v1/{passthrough}", "passthrough target-model", "/v1/{passthrough}"),
    ],
)
def test_target_span_names_the_operation(
    traced_gateway: GatewayProcess,
    fake: FakeOpenAI,
    http_receiver: OtlpHttpReceiver,
    path: str,
    body: dict[str, str],
    server: str,
    target: str,
    route: str,
) -> None:
    http_receiver.clear()
    response = httpx.post(traced_gateway.base_url + path, json={"model": "test-model", **body}, timeout=10)
    assert response.status_code == 200, response.text
    holder: dict[str, str] = {}

    def ready(spans: list) -> bool:  # type: ignore[type-arg]
        found = complete_trace((server, target))(spans)
        if found:
            holder["id"] = found
        return bool(found)

    spans = trace_of(http_receiver.wait_for(ready, timeout=30), holder["id"])
    assert one(spans, server).attributes["http.route"] == route
    span = one(spans, target)
    assert span.kind == "CLIENT" and span.attributes["gen_ai.operation.name"] == target.split()[0]
