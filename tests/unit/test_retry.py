"""The pure retry policy: retryable matrix, backoff, retry-after parsing and caps, deadline; and
the retry/fallback config keys."""

from __future__ import annotations

import email.utils

import pytest
from pydantic import ValidationError

from gateway.config.models import GatewayConfig, RetryConfig
from gateway.errors import InvalidRequest, UpstreamTimeout, UpstreamUnreachable
from gateway.upstream.retry import (
    RetryPolicy,
    backoff_delay,
    decide,
    error_kind,
    error_retryable,
    next_delay,
    outcome_of,
    parse_retry_after,
    status_retryable,
)

DEFAULT = RetryPolicy()
NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(200, False), (201, False), (400, False), (401, False), (403, False), (404, False), (408, False), (413, False),
     (422, False), (429, True), (500, True), (501, False), (502, True), (503, True), (504, True)],
)
def test_default_status_matrix(status: int, retryable: bool) -> None:
    assert status_retryable(DEFAULT, status) is retryable


def test_error_matrix() -> None:
    connect, timeout, client = UpstreamUnreachable("x"), UpstreamTimeout("x"), InvalidRequest("x")
    assert (error_kind(connect), error_kind(timeout), error_kind(client)) == ("connect", "timeout", None)
    assert error_retryable(DEFAULT, connect) and error_retryable(DEFAULT, timeout)
    assert not error_retryable(DEFAULT, client)
    only_connect = RetryPolicy(on_errors=frozenset({"connect"}))
    assert error_retryable(only_connect, connect) and not error_retryable(only_connect, timeout)
    assert not error_retryable(RetryPolicy(on_errors=frozenset()), connect)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(backoff_s=0.1, backoff_max_s=1.0)
    assert [backoff_delay(policy, n, 0.999999) for n in (1, 2, 3, 4, 5, 6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0], rel=1e-5)
    assert [backoff_delay(policy, n, 0.0) for n in (1, 2, 3, 5)] == pytest.approx([0.05, 0.1, 0.2, 0.5])
    assert 0.15 <= backoff_delay(policy, 2, 0.5) <= 0.2
    assert backoff_delay(RetryPolicy(backoff_s=0.0), 3, 0.7) == 0.0
    assert backoff_delay(policy, 1, 5.0) == pytest.approx(0.1)  # a draw out of range is clamped


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "x", "retry-after": "9"}, 9.0),
        ({"retry-after": email.utils.formatdate(NOW + 7, usegmt=True)}, 7.0),
        ({"retry-after": email.utils.formatdate(NOW - 60, usegmt=True)}, 0.0),
        ({"retry-after": "Mon, 99 Foo 2026 99:99:99 GMT"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    got = parse_retry_after(headers, NOW)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_retry_after_replaces_backoff_and_is_capped_by_the_deadline() -> None:
    policy = RetryPolicy(backoff_s=0.1)
    assert next_delay(policy, 1, 2.0, 10.0, 0.5) == 2.0  # longer than the backoff: honoured
    assert next_delay(policy, 1, 0.0, 10.0, 0.5) == 0.0
    assert next_delay(policy, 1, None, 10.0, 0.0) == pytest.approx(0.05)
    assert next_delay(policy, 1, 20.0, 10.0, 0.5) is None  # does not fit in the deadline
    assert next_delay(policy, 1, None, 0.01, 0.5) is None


def test_decide_retries_then_fails_over_then_gives_up() -> None:
    policy = RetryPolicy(attempts=3, backoff_s=0.1)
    args = {"retry_after": None, "remaining_s": 10.0, "draw": 0.0}
    assert decide(policy, retryable=False, attempt=1, fallbacks_left=True, **args).action == "done"
    first = decide(policy, retryable=True, attempt=1, fallbacks_left=True, **args)
    assert first.action == "retry" and first.delay_s == pytest.approx(0.05)
    assert decide(policy, retryable=True, attempt=2, fallbacks_left=False, **args).delay_s == pytest.approx(0.1)
    assert decide(policy, retryable=True, attempt=3, fallbacks_left=True, **args).action == "fail_over"
    assert decide(policy, retryable=True, attempt=3, fallbacks_left=False, **args).action == "give_up"


def test_decide_respects_the_deadline() -> None:
    policy = RetryPolicy(attempts=5)
    late = {"attempt": 1, "draw": 0.0, "retryable": True}
    # a retry-after past the deadline: no wait on this target, straight to the fallback
    assert decide(policy, retry_after=30.0, remaining_s=5.0, fallbacks_left=True, **late).action == "fail_over"
    assert decide(policy, retry_after=30.0, remaining_s=5.0, fallbacks_left=False, **late).action == "give_up"
    # the deadline spent: neither a retry nor a fallback
    assert decide(policy, retry_after=None, remaining_s=0.0, fallbacks_left=True, **late).action == "give_up"


def test_attempts_1_never_retries() -> None:
    decision = decide(RetryPolicy(), retryable=True, attempt=1, retry_after=0.0, remaining_s=60, fallbacks_left=False, draw=0.0)
    assert decision.action == "give_up"


def test_outcome_labels() -> None:
    d = decide(RetryPolicy(attempts=2), retryable=True, attempt=1, retry_after=None, remaining_s=9, fallbacks_left=False, draw=0)
    assert outcome_of(d, True) == "retried_status" and outcome_of(d, False) == "retried_error"
    fo = decide(RetryPolicy(), retryable=True, attempt=1, retry_after=None, remaining_s=9, fallbacks_left=True, draw=0)
    assert outcome_of(fo, True) == "failed_over"
    done = decide(RetryPolicy(), retryable=False, attempt=1, retry_after=None, remaining_s=9, fallbacks_left=True, draw=0)
    assert outcome_of(done, True) == "ok" and outcome_of(done, False) == "exhausted"
    gave_up = decide(RetryPolicy(), retryable=True, attempt=1, retry_after=None, remaining_s=9, fallbacks_left=False, draw=0)
    assert outcome_of(gave_up, True) == "exhausted"


# -- config ---------------------------------------------------------------------------------------


def _config(*targets: dict[str, object], **top: object) -> GatewayConfig:
    base = {"endpoints": ["http://127.0.0.1:9/v1"]}
    return GatewayConfig.model_validate({"targets": [{**base, **t} for t in targets], **top})


def test_retry_defaults_keep_todays_behaviour() -> None:
    cfg = _config({"name": "a"})
    policy = RetryPolicy.of(cfg.retry_for(cfg.targets[0]))
    assert policy == RetryPolicy()
    assert policy.attempts == 1 and policy.on_status == {429, 500, 502, 503, 504}
    assert cfg.targets[0].fallbacks == []


def test_target_retry_overrides_only_the_keys_it_sets() -> None:
    cfg = _config({"name": "a", "retry": {"attempts": 3}}, {"name": "b"}, retry={"deadline_s": 5, "backoff_s": 0.5})
    a, b = cfg.retry_for(cfg.targets[0]), cfg.retry_for(cfg.targets[1])
    assert (a.attempts, a.deadline_s, a.backoff_s) == (3, 5, 0.5)
    assert (b.attempts, b.deadline_s) == (1, 5)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([{"name": "a", "fallbacks": ["a"]}], "cannot be its own fallback"),
        ([{"name": "a", "fallbacks": ["nope"]}], "no target named 'nope'"),
        ([{"name": "a", "fallbacks": ["b", "b"]}, {"name": "b"}], "listed twice"),
    ],
)
def test_bad_fallbacks_are_rejected(targets: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _config(*targets)


def test_fallback_cycles_are_allowed_one_level_deep() -> None:
    cfg = _config({"name": "a", "fallbacks": ["b"]}, {"name": "b", "fallbacks": ["a"]})
    assert cfg.targets[1].fallbacks == ["a"]


@pytest.mark.parametrize("retry", [{"on_status": [400]}, {"on_status": [404, 500]}, {"attempts": 0}, {"deadline_s": 0}, {"on_errors": ["dns"]}])
def test_bad_retry_blocks_are_rejected(retry: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RetryConfig.model_validate(retry)


# -- the router's pure helpers ----------------------------------------------------------------------


def test_a_fallback_gets_the_same_body_with_its_upstream_model() -> None:
    from gateway.upstream.router import body_for, route_headers, route_headers_of

    cfg = _config({"name": "a", "fallbacks": ["b"]}, {"name": "b", "upstream_model": "b-up"})
    body = b'{"model":"a","messages":[{"role":"user","content":"hi"}],"x_vendor":{"k":[1,2]}}'
    assert body_for(body, cfg.targets[1]) == b'{"model":"b-up","messages":[{"role":"user","content":"hi"}],"x_vendor":{"k":[1,2]}}'
    assert body_for(body, cfg.targets[0]) is body  # already its model: the same bytes
    assert body_for(b"not json", cfg.targets[1]) == b"not json"
    assert route_headers_of({**route_headers("b", 3), "content-type": "x"}) == {"x-mpr-target": "b", "x-mpr-attempts": "3"}
    assert route_headers_of({}) == {}
