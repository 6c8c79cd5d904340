"""Cache-aware routing, pure parts: the ring, bounded loads, health moves, the pool's choice, and
the affinity keys of chat and Responses requests."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from gateway.endpoints.routing_keys import chat_affinity, responses_affinity
from gateway.upstream.affinity import Ring, choose_affine, key_hash, load_bound
from gateway.upstream.pool import Endpoint, EndpointPool

URLS = [f"http://replica-{i}:8000/v1" for i in range(4)]


@dataclass
class Rep:
    url: str
    outstanding: int = 0
    cooldown_until: float = 0.0


def test_the_ring_is_the_same_in_every_process_and_splits_keys_evenly() -> None:
    a, b = Ring(URLS), Ring(list(URLS))
    keys = [key_hash("conversation", str(i)) for i in range(4000)]
    assert [a.order(k) for k in keys[:200]] == [b.order(k) for k in keys[:200]]  # no per-process salt
    homes = Counter(a.order(k)[0] for k in keys)
    assert all(700 < homes[i] < 1300 for i in range(4)), homes  # 1000 each, give or take
    assert all(sorted(a.order(k)) == [0, 1, 2, 3] for k in keys[:100])  # every replica once, in ring order


def test_removing_a_replica_moves_only_its_own_keys() -> None:
    before, after = Ring(URLS), Ring(URLS[:3])
    keys = [key_hash("k", str(i)) for i in range(2000)]
    for k in keys:
        home = URLS[before.order(k)[0]]
        if home != URLS[3]:
            assert URLS[after.order(k)[0]] == home


def test_a_key_stays_home_while_the_load_allows() -> None:
    reps = [Rep(u) for u in URLS]
    order = Ring(URLS).order(key_hash("one conversation"))
    chosen, result = choose_affine(reps, order, now=0.0, epsilon=0.25)
    assert chosen is reps[order[0]] and result == "hit"


def test_an_overloaded_home_spills_to_the_next_replica_on_the_ring() -> None:
    reps = [Rep(u) for u in URLS]
    order = Ring(URLS).order(key_hash("hot conversation"))
    reps[order[0]].outstanding = 3  # total 3: bound ceil(1.25 * 4 / 4) = 2
    chosen, result = choose_affine(reps, order, now=0.0, epsilon=0.25)
    assert chosen is reps[order[1]] and result == "spill"


def test_a_cooling_replica_hands_its_keys_to_the_next_and_gets_them_back() -> None:
    reps = [Rep(u) for u in URLS]
    order = Ring(URLS).order(key_hash("a conversation"))
    reps[order[0]].cooldown_until = 10.0
    chosen, result = choose_affine(reps, order, now=5.0, epsilon=0.25)
    assert chosen is reps[order[1]] and result == "moved"
    chosen, result = choose_affine(reps, order, now=11.0, epsilon=0.25)  # back: home again
    assert chosen is reps[order[0]] and result == "hit"


def test_loads_stay_within_the_bound_under_a_skewed_stream() -> None:
    """Random arrivals and departures, 80% of them one hot key: at every placement the chosen
    replica's load stays within (1 + epsilon) x the mean (rounded up), and the hot key spills."""
    rng = random.Random(7)
    ring = Ring(URLS)
    reps = [Rep(u) for u in URLS]
    in_flight: list[Rep] = []
    results: Counter[str] = Counter()
    for step in range(5000):
        if in_flight and rng.random() < 0.45:
            in_flight.pop(rng.randrange(len(in_flight))).outstanding -= 1
            continue
        key = "hot" if rng.random() < 0.8 else f"cold-{rng.randrange(500)}"
        total = sum(r.outstanding for r in reps)
        chosen, result = choose_affine(reps, ring.order(key_hash(key)), now=0.0, epsilon=0.25)
        assert chosen is not None
        assert chosen.outstanding + 1 <= load_bound(total, len(reps), 0.25)
        chosen.outstanding += 1
        in_flight.append(chosen)
        results[result] += 1
    assert results["spill"] > 0 and results["hit"] > 0


def test_the_pool_places_by_key_and_counts_it() -> None:
    pool = EndpointPool("target:t", [Endpoint(u) for u in URLS], balance="affinity")
    key = key_hash("conv")
    first = pool.pick(affinity=key)
    assert all(pool.pick(affinity=key) is first for _ in range(5))  # nothing in flight: always home
    other = pool.pick(exclude=[first], affinity=key)  # the retry after a refused connection
    assert other is not None and other is not first
    assert pool.pick() is not None  # no key: least outstanding
    assert pool.placed["hit"] == 6 and pool.placed["moved"] == 1 and pool.placed["none"] == 1
    assert pool.pinned(URLS[2]) is pool.endpoints[2] and pool.pinned("http://gone/v1") is None


def test_least_outstanding_pools_ignore_keys() -> None:
    pool = EndpointPool("target:t", [Endpoint(u) for u in URLS[:2]])
    pool.endpoints[0].outstanding = 1
    assert pool.pick(affinity=key_hash("x")) is pool.endpoints[1]
    assert sum(pool.placed.values()) == 0


def test_a_conversation_keeps_its_key_on_every_turn_and_tool_step() -> None:
    system = {"role": "system", "content": "You are terse."}
    turn1 = [system, {"role": "user", "content": "plan a trip to Lisbon"}]
    turn2 = [*turn1, {"role": "assistant", "content": "Sure."}, {"role": "user", "content": "and Porto?"}]
    tool_step = [*turn2, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}, {"role": "tool", "content": "{}"}]
    keys = {chat_affinity({"messages": m}) for m in (turn1, turn2, tool_step)}
    assert len(keys) == 1 and None not in keys
    other = chat_affinity({"messages": [system, {"role": "user", "content": "plan a trip to Rome"}]})
    assert other not in keys
    hinted = chat_affinity({"messages": turn2, "prompt_cache_key": "user-42"})
    assert hinted == chat_affinity({"messages": [{"role": "user", "content": "x"}], "prompt_cache_key": "user-42"})
    assert chat_affinity({"messages": "junk"}) is None


def test_a_responses_conversation_keeps_its_key() -> None:
    first = {"instructions": "Be brief.", "input": "plan a trip to Lisbon"}
    later = {"instructions": "Be brief.", "input": [
        {"role": "user", "content": "plan a trip to Lisbon"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Sure."}]},
        {"type": "function_call_output", "call_id": "c", "output": "{}"},
        {"role": "user", "content": [{"type": "input_text", "text": "and Porto?"}]},
    ]}
    assert responses_affinity(first) == responses_affinity(later) is not None
    assert responses_affinity({"input": "plan a trip to Lisbon"}) != responses_affinity(first)  # other instructions
