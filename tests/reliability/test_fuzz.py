"""Fuzzing the running gateway with hypothesis: request bodies, content parts, headers, raw bytes.

The peers are healthy (a target that always answers, adapters that refine), so every 5xx is the
gateway's own doing. For each example: status < 500, no stack trace in the response, every error
in OpenAI's shape; at the end the process is alive and its RSS within 10% of the warmed-up value.
``MPR_FUZZ_EXAMPLES`` (default 200) sets the examples per strategy.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.helpers import figures, routes_for, rss_mb
from tests.reliability.peers import PROMPT, FaultyPeer
from tests.support.gateway_proc import GatewayProcess

EXAMPLES = int(os.environ.get("MPR_FUZZ_EXAMPLES", "200"))
TRACE_RE = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+|\bat 0x[0-9a-f]{6,}")
STAGE_TEXTS = {
    "cleaner": "what is the capital of france",
    "paraphraser": "What is the capital of France?",
    "describer": "France is a country in Western Europe. Paris is its capital city.",
}
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))


class RobustPeer(FaultyPeer):
    """A healthy peer that never 5xx's on odd-but-forwarded fields (so any 5xx is the gateway's)."""

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            return await super()._chat(request)
        except (AttributeError, TypeError, KeyError, ValueError):
            return web.json_response({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]})


class Stats:
    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, httpx.Client, Stats]]:
    peer = RobustPeer(lambda model, body: STAGE_TEXTS.get(model, "a fine answer")).start()
    tree = routes_for(peer.base_url, {r: peer.base_url for r in STAGE_TEXTS}, server={"max_body_bytes": 65536, "max_messages": 64})
    gw = GatewayProcess(tree, tmp_path_factory.mktemp("fuzz")).start()
    client = httpx.Client(base_url=gw.url, timeout=20)
    stats = Stats()
    try:
        for i in range(150):  # warm up: caches, pools, allocator arenas
            client.post("/v1/chat/completions", json={"model": "test-model", "stream": i % 2 == 0, "messages": [{"role": "user", "content": PROMPT}]})
        assert gw.proc is not None
        rss_before = rss_mb(gw.proc.pid)
        yield gw, client, stats
        alive = gw.proc.poll() is None
        for i in range(150):  # the same load again, so both readings are taken in the same state
            client.post("/v1/chat/completions", json={"model": "test-model", "stream": i % 2 == 0, "messages": [{"role": "user", "content": PROMPT}]})
        rss_after = rss_mb(gw.proc.pid) if alive else float("nan")
        growth = (rss_after - rss_before) / rss_before
        figures(
            "fuzz_total",
            requests=sum(stats.statuses.values()),
            statuses=dict(sorted(stats.statuses.items())),
            gateway_5xx_or_traces=len(stats.failures),
            alive=alive,
            rss_before_mb=round(rss_before, 1),
            rss_after_mb=round(rss_after, 1),
            rss_growth_pct=round(100 * growth, 2),
        )
        assert alive, gw.logs()[-3000:]
        assert growth < 0.10
    finally:
        client.close()
        gw.stop()
        peer.stop()


def _check(stats: Stats, r: httpx.Response, what: str) -> None:
    stats.statuses[r.status_code] += 1
    text = r.text
    problems = []
    if r.status_code >= 500:
        problems.append(f"{r.status_code}")
    if TRACE_RE.search(text):
        problems.append("stack trace")
    if 400 <= r.status_code and r.headers.get("content-type", "").startswith("application/json"):
        err = r.json().get("error")
        if not isinstance(err, dict) or set(err) != {"message", "type", "param", "code"}:
            problems.append("error not in OpenAI shape")
    elif 400 <= r.status_code:
        problems.append(f"error content-type {r.headers.get('content-type')}")
    if problems:
        stats.failures.append(f"{what}: {problems} {text[:300]}")
        raise AssertionError(f"{problems}: {what[:500]} -> {r.status_code} {text[:500]}")


# -- strategies ------------------------------------------------------------------------------------
json_scalar = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
json_value = st.recursive(json_scalar, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)
words = st.lists(st.sampled_from(["waht", "is", "teh", "capital", "of", "frnace", "hello", "wrld", "the", "the", "```", "def f():", "é", "ß", "日本", "\u200b", "\x00"]), max_size=30).map(" ".join)
text = st.one_of(words, st.text(max_size=200))
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": st.text(max_size=30)})}),
    st.fixed_dictionaries({"type": st.just("text"), "text": json_value}),
    st.dictionaries(st.sampled_from(["type", "text", "image_url", "input_audio", "file"]), json_value, max_size=3),
    json_value,
)
content = st.one_of(text, st.lists(part, max_size=5), json_value)
role = st.one_of(st.sampled_from(["user", "system", "assistant", "developer", "tool", "function"]), st.text(max_size=10), json_value)
message = st.one_of(
    st.fixed_dictionaries({"role": role, "content": content}, optional={"name": json_value, "tool_calls": json_value, "tool_call_id": json_value}),
    json_value,
)
stages = st.one_of(st.lists(st.one_of(st.sampled_from(["cleaner", "describer", "paraphraser", "CLEANER", " paraphraser", ""]), json_value), max_size=4), json_value, st.text(max_size=30))
mpr = st.one_of(
    st.fixed_dictionaries({}, optional={"refine": json_value, "stages": stages, "return_details": st.one_of(st.booleans(), json_value), "skip_gate": st.one_of(st.booleans(), json_value)}),
    st.dictionaries(st.text(max_size=10), json_value, max_size=3),
    json_value,
)
body = st.fixed_dictionaries(
    {
        "model": st.one_of(st.just("test-model"), st.just("test-model"), st.text(max_size=20), json_value),
        "messages": st.one_of(st.lists(message, min_size=1, max_size=6), json_value),
    },
    optional={
        "stream": st.one_of(st.booleans(), json_value),
        "mpr": mpr,
        "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
        "temperature": json_value,
        "tools": json_value,
        "response_format": json_value,
        "n": json_value,
        "vendor_extension": json_value,
    },
)
header_value = st.one_of(st.sampled_from(["on", "off", "true", "0", "", "cleaner", "cleaner,paraphraser", "describer,,x", "OFF"]), st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60).map(str.strip))
headers = st.fixed_dictionaries(
    {},
    optional={
        "x-mpr-refine": header_value,
        "x-mpr-stages": header_value,
        "content-type": st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=latin-1"]),
        "authorization": header_value,
        "accept": header_value,
        "x-request-id": header_value,
        "content-encoding": st.sampled_from(["gzip", "br", "identity"]),
    },
)


@SETTINGS
@given(payload=body, hdrs=headers)
def test_fuzz_chat_bodies_and_headers(fuzz_env: tuple[GatewayProcess, httpx.Client, Stats], payload: dict[str, Any], hdrs: dict[str, str]) -> None:
    _, client, stats = fuzz_env
    raw = json.dumps(payload).encode()
    r = client.post("/v1/chat/completions", content=raw, headers=hdrs)
    _check(stats, r, f"chat {raw[:400]!r} {hdrs}")


good_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": st.text(max_size=30)})}),
    st.fixed_dictionaries({"type": st.sampled_from(["input_audio", "file", "refusal", "x-vendor"])}, optional={"data": json_value}),
)
good_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "developer", "tool"]), "content": st.one_of(text, st.none(), st.lists(good_part, max_size=5))},
    optional={"name": st.text(max_size=10), "tool_call_id": st.text(max_size=10)},
)
good_body = st.fixed_dictionaries(
    {"model": st.just("test-model"), "messages": st.lists(good_message, min_size=1, max_size=6).map(lambda m: [*m, {"role": "user", "content": PROMPT}] if len(m) % 3 == 0 else m)},
    optional={
        "stream": st.booleans(),
        "mpr": st.fixed_dictionaries({}, optional={"refine": st.booleans(), "stages": st.lists(st.sampled_from(["cleaner", "describer", "paraphraser"]), max_size=3), "return_details": st.booleans(), "skip_gate": st.booleans()}),
        "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
        "temperature": json_value,
        "tools": json_value,
        "vendor_extension": json_value,
    },
)


@SETTINGS
@given(payload=good_body, hdrs=headers.map(lambda h: {k: v for k, v in h.items() if k not in ("content-type", "content-encoding", "authorization")}))
def test_fuzz_valid_shaped_chat(fuzz_env: tuple[GatewayProcess, httpx.Client, Stats], payload: dict[str, Any], hdrs: dict[str, str]) -> None:
    """Bodies the gateway accepts: into refinement, merge, forwarding and the stream relay."""
    _, client, stats = fuzz_env
    raw = json.dumps(payload).encode()
    r = client.post("/v1/chat/completions", content=raw, headers={**hdrs, "content-type": "application/json"})
    _check(stats, r, f"valid chat {raw[:400]!r} {hdrs}")


@SETTINGS
@given(payload=st.one_of(st.fixed_dictionaries({"prompt": st.one_of(text, json_value)}, optional={"stages": stages, "skip_gate": json_value, "extra": json_value}), json_value), hdrs=headers)
def test_fuzz_refine(fuzz_env: tuple[GatewayProcess, httpx.Client, Stats], payload: Any, hdrs: dict[str, str]) -> None:
    _, client, stats = fuzz_env
    raw = json.dumps(payload).encode()
    r = client.post("/v1/refine", content=raw, headers=hdrs)
    _check(stats, r, f"refine {raw[:400]!r} {hdrs}")


@SETTINGS
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        body.map(lambda b: json.dumps(b).encode()).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])),  # truncated JSON
        body.map(lambda b: b"\xef\xbb\xbf" + json.dumps(b).encode()),  # BOM
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
    path=st.sampled_from(["/v1/chat/completions", "/v1/refine", "/v1/models", "/v1/models/test-model", "/v1/nope", "/ready"]),
    method=st.sampled_from(["POST", "GET", "PUT", "DELETE"]),
)
def test_fuzz_raw_bytes_paths_methods(fuzz_env: tuple[GatewayProcess, httpx.Client, Stats], raw: bytes, path: str, method: str) -> None:
    _, client, stats = fuzz_env
    r = client.request(method, path, content=raw if method in ("POST", "PUT") else None)
    _check(stats, r, f"{method} {path} {raw[:200]!r}")


PATHOLOGICAL: dict[str, bytes] = {
    "deep_array_body": b"[" * 20000 + b"]" * 20000,
    "deep_object_in_message": b'{"model": "test-model", "messages": [{"role": "user", "content": "hi", "x": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}]}",
    "deep_list_in_mpr": b'{"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "mpr": {"stages": ' + b"[" * 9000 + b"]" * 9000 + b"}}",
    "deep_refine_prompt": b'{"prompt": ' + b"[" * 9000 + b"]" * 9000 + b"}",
    "lone_surrogate": b'{"model": "test-model", "messages": [{"role": "user", "content": "\\ud800 waht"}]}',
    "nul_bytes": b'{"model": "test-model", "messages": [{"role": "user", "content": "wa\\u0000ht is teh"}]}',
    "huge_int": b'{"model": "test-model", "n": 1' + b"0" * 400 + b', "messages": [{"role": "user", "content": "hi"}]}',
    "huge_float": b'{"model": "test-model", "temperature": 1e999, "messages": [{"role": "user", "content": "hi"}]}',
    "duplicate_keys": b'{"model": "nope", "model": "test-model", "messages": [], "messages": [{"role": "user", "content": "hi"}]}',
    "invalid_utf8": b'{"model": "test-model", "messages": [{"role": "user", "content": "\xff\xfe waht"}]}',
    "many_parts": json.dumps({"model": "test-model", "messages": [{"role": "user", "content": [{"type": "text", "text": "waht"}] * 1500}]}).encode(),
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_bodies(fuzz_env: tuple[GatewayProcess, httpx.Client, Stats], name: str) -> None:
    _, client, stats = fuzz_env
    for path in ("/v1/chat/completions", "/v1/refine"):
        r = client.post(path, content=PATHOLOGICAL[name], headers={"content-type": "application/json"})
        figures(f"fuzz_pathological[{name}{path}]", status=r.status_code, body=r.text[:120])
        _check(stats, r, f"{name} {path}")
