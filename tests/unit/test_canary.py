"""The canary's pure parts: sticky routing by prompt, the two-proportion test, rolling back."""

from __future__ import annotations

from gateway.refinement.canary import ArmCounts, Canary, judge, routes_to_candidate


def test_routing_is_sticky_and_takes_the_share() -> None:
    texts = [f"prompt number {i} with some words" for i in range(20_000)]
    chosen = [routes_to_candidate(t, 0.2) for t in texts]
    assert abs(sum(chosen) / len(texts) - 0.2) < 0.01
    assert chosen[:500] == [routes_to_candidate(t, 0.2) for t in texts[:500]]  # the same text, the same arm
    assert all(routes_to_candidate(t, 1.0) for t in texts[:50]) and not any(routes_to_candidate(t, 0.0) for t in texts[:50])
    # growing the share only adds prompts to the candidate: none moves back
    assert all(routes_to_candidate(t, 0.5) for t, c in zip(texts, chosen) if c)


def test_no_verdict_before_both_arms_reach_the_minimum() -> None:
    bad, good = ArmCounts(rejected=100), ArmCounts(accepted=5)
    assert judge(good, bad, min_requests=10, alpha=0.01).worse is False
    assert judge(good, bad, min_requests=10, alpha=0.01).p_value is None


def test_a_clearly_worse_candidate_is_judged_worse_and_a_similar_one_is_not() -> None:
    stable = ArmCounts(accepted=180, rejected=20)
    assert judge(stable, ArmCounts(accepted=100, rejected=100), 50, 0.001).worse
    similar = judge(stable, ArmCounts(accepted=88, rejected=12), 50, 0.001)
    assert not similar.worse and similar.p_value is not None and similar.p_value > 0.1
    better = judge(stable, ArmCounts(accepted=100), 50, 0.001)
    assert not better.worse  # one-sided: a better candidate is never rolled back


def test_the_canary_rolls_back_by_itself_and_says_so() -> None:
    seen: list[str] = []
    canary = Canary("cleaner", "cleaner", "cleaner@2", 0.5, min_requests=20, alpha=0.001, on_change=lambda c, kind, adopted: seen.append(kind))
    before = canary.fingerprint
    for _ in range(20):
        canary.record("stable", "accepted", 2.0, 0.03)
    for i in range(20):
        canary.record("candidate", "failed" if i % 2 else "rejected", 3.0, None)
    assert canary.state == "rolled_back" and seen == ["canary.rolled_back"]
    assert canary.fingerprint != before  # the refinement cache no longer reuses the candidate's outcomes
    assert canary.arm("any text at all") == "stable"
    assert canary.as_dict()["arms"]["candidate"]["acceptance_rate"] == 0.0
    assert not canary.set_state("rolled_back", "again")  # no second event


def test_report_only_canaries_never_roll_back() -> None:
    canary = Canary("cleaner", "cleaner", "cleaner@2", 0.5, min_requests=10, alpha=0.01, auto_rollback=False)
    for _ in range(10):
        canary.record("stable", "accepted", 1.0, None)
        canary.record("candidate", "rejected", 1.0, None)
    assert canary.state == "active" and canary.last.worse


def test_a_stored_verdict_is_adopted_once_and_not_written_back() -> None:
    seen: list[tuple[str, bool]] = []
    canary = Canary("cleaner", "cleaner", "cleaner@2", 0.5, on_change=lambda c, kind, adopted: seen.append((kind, adopted)))
    other = Canary("cleaner", "cleaner", "cleaner@2", 0.5)
    other.set_state("rolled_back", "operator: rollback")
    assert canary.adopt(other.verdict()) and canary.state == "rolled_back" and canary.reason == "operator: rollback"
    assert not canary.adopt(other.verdict())  # nothing new
    assert not canary.adopt(b"junk") and not canary.adopt(None)
    assert seen == [("canary.rolled_back", True)]
    assert canary.record_key == "canary:cleaner:cleaner@2"


def test_unchanged_is_neutral() -> None:
    from gateway.refinement.canary import verdict_outcome

    assert verdict_outcome(False, False, "unchanged") == "unchanged"
    assert verdict_outcome(False, False, "drift") == "rejected"
    assert verdict_outcome(True, False, None) == "failed"
    canary = Canary("cleaner", "cleaner", "cleaner@2", 0.5, min_requests=10, alpha=0.01)
    for _ in range(10):
        canary.record("stable", "accepted", 1.0, None)
        canary.record("candidate", "accepted", 1.0, None)
    for _ in range(50):  # a candidate that rightly leaves clean prompts alone is not worse for it
        canary.record("candidate", "unchanged", 1.0, None)
    assert canary.state == "active" and canary.arms["candidate"].total == 10
