from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from gateway.sse import UsageFilter, reports_usage, usage_events


def event(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


CONTENT = [event({"choices": [{"index": 0, "delta": {"content": f"w{i} "}}]}) for i in range(4)]
USAGE = event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})
DONE = b"data: [DONE]\n\n"
STREAM = b"".join(CONTENT) + USAGE + DONE
EXPECTED = b"".join(CONTENT) + DONE


def run(chunks: list[bytes]) -> bytes:
    f = UsageFilter()
    return b"".join(f.feed(c) for c in chunks) + f.flush()


def test_whole_events_pass_and_usage_dropped() -> None:
    assert run([*CONTENT, USAGE, DONE]) == EXPECTED


def test_untouched_without_usage() -> None:
    f = UsageFilter()
    assert f.feed(CONTENT[0]) is CONTENT[0]


def test_content_chunk_with_usage_key_kept() -> None:
    chunk = event({"choices": [{"index": 0, "delta": {"content": "x"}}], "usage": {"total_tokens": 1}})
    assert run([chunk, DONE]) == chunk + DONE


def test_crlf_events() -> None:
    usage = USAGE.replace(b"\n\n", b"\r\n\r\n")
    assert run([CONTENT[0], usage, DONE]) == CONTENT[0] + DONE


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12))
def test_any_split_gives_the_same_bytes(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)])]
    assert run(chunks) == EXPECTED


NULL_USAGE = [event({"choices": [{"index": 0, "delta": {"content": f"w{i} "}}], "usage": None}) for i in range(4)]


def test_openai_null_usage_chunks_pass_untouched() -> None:
    """OpenAI (and vLLM) put ``"usage": null`` in every chunk of a stream that asked for usage:
    those pass through as they are (the fast path), the final usage chunk is still dropped."""
    f = UsageFilter()
    assert [f.feed(c) for c in NULL_USAGE] == NULL_USAGE
    assert run([*NULL_USAGE, USAGE, DONE]) == b"".join(NULL_USAGE) + DONE
    assert run([b"".join(NULL_USAGE) + USAGE + DONE]) == b"".join(NULL_USAGE) + DONE  # one read


def test_reports_usage() -> None:
    assert not reports_usage(b'data: {"usage":null}\n\n') and not reports_usage(b'data: {"usage" :  null}')
    assert reports_usage(USAGE) and reports_usage(b'{"usage": null, "x": {"usage": {}}}')
    assert not reports_usage(b'data: {"content": "no usage here"}')
    assert [USAGE] == [STREAM[s:e] for s, e in usage_events(STREAM)]


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=6))
def test_the_meter_reads_usage_through_the_filter(cuts: list[int]) -> None:
    """With a meter attached the filter decodes the stream once for both: whatever the reads,
    the bytes are the same and the meter sees the usage event."""
    from gateway.tenants.usage import StreamUsage

    meter = StreamUsage()
    f = UsageFilter(on_usage=meter.take)
    bounds = [0, *sorted(set(cuts)), len(STREAM)]
    out = b"".join(f.feed(STREAM[a:b]) for a, b in zip(bounds, bounds[1:])) + f.flush()
    assert out == EXPECTED
    assert meter.usage == (3, 4)


def test_the_meter_reads_an_unterminated_usage_event_at_flush() -> None:
    from gateway.tenants.usage import StreamUsage

    meter = StreamUsage()
    f = UsageFilter(on_usage=meter.take)
    f.feed(b"".join(CONTENT) + USAGE.rstrip(b"\n"))
    f.flush()
    assert meter.usage == (3, 4)
