"""Limit checks: the vectorised rules agree with a sample-by-sample state machine, whatever
the batching; persistence, hysteresis and stuck values behave as documented."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.tasks.monitoring.limits import (
    Carry,
    LimitRule,
    check,
    check_parameter,
    rules_for,
    run_lengths,
)


def reference(v: np.ndarray, rule: LimitRule) -> list[tuple[int, str]]:
    """Plain loop over samples: the documented state machine, one sample at a time."""
    out: list[tuple[int, str]] = []
    active = False
    streak = clear_streak = 0
    prev = None
    for i, x in enumerate(v):
        if rule.kind == "stuck":
            same = prev is not None and x == prev
            streak = streak + 1 if same else 0
            if not active and streak == rule.persistence - 1:
                active = True
                out.append((i, "raise"))
            elif active and not same:
                active = False
                out.append((i, "clear"))
            prev = x
            continue
        lo = -np.inf if rule.low is None else rule.low
        hi = np.inf if rule.high is None else rule.high
        is_out = x < lo or x > hi
        is_clear = lo + rule.hysteresis <= x <= hi - rule.hysteresis
        streak = streak + 1 if is_out else 0
        clear_streak = clear_streak + 1 if is_clear else 0
        if not active and streak == rule.persistence:
            active = True
            out.append((i, "raise"))
        elif active and clear_streak == rule.persistence:
            active = False
            out.append((i, "clear"))
    return out


def batched(v: np.ndarray, rule: LimitRule, cuts: np.ndarray) -> list[tuple[int, str]]:
    t = np.arange(v.size, dtype=float)
    carry = Carry()
    got = []
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, v.size], strict=True):
        r = check(t[lo:hi], v[lo:hi], rule, carry)
        got += [(lo + tr.index, tr.action) for tr in r.transitions]
        # the transition's time is its sample's time
        assert all(tr.time == lo + tr.index for tr in r.transitions)
        carry = r.carry
    return got


def test_run_lengths_with_carry() -> None:
    m = np.array([1, 1, 0, 1, 1, 1, 0], bool)
    assert run_lengths(m).tolist() == [1, 2, 0, 1, 2, 3, 0]
    assert run_lengths(m, carry=4).tolist() == [5, 6, 0, 1, 2, 3, 0]
    assert run_lengths(np.zeros(0, bool)).tolist() == []


@pytest.mark.parametrize("seed", range(12))
def test_vectorised_rules_match_the_state_machine_in_any_batching(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    # a random walk crossing the limits often, with quantised values for stuck runs
    v = np.round(np.cumsum(rng.normal(0, 0.6, n)) % 20 - 10, 0 if seed % 3 == 0 else 2)
    # plateaus of random lengths: frozen values for the stuck rule
    for start in rng.choice(n - 10, size=30, replace=False):
        v[start : start + int(rng.integers(1, 9))] = v[start]
    rules = [
        LimitRule("soft", -5.0, 5.0, persistence=int(rng.integers(1, 6)), hysteresis=0.7),
        LimitRule("hard", None, 8.0, persistence=int(rng.integers(1, 4))),
        LimitRule("hard", -8.0, None, persistence=2, hysteresis=1.5),
        LimitRule("stuck", persistence=int(rng.integers(2, 6))),
    ]
    for rule in rules:
        want = reference(v, rule)
        assert want, "the walk should cross every limit at least once"
        for _ in range(3):
            cuts = np.sort(
                rng.choice(np.arange(1, n), size=int(rng.integers(1, 40)), replace=False)
            )
            assert batched(v, rule, cuts) == want, rule
        assert batched(v, rule, np.array([], int)) == want


def test_persistence_filters_short_spikes_and_hysteresis_stops_flapping() -> None:
    rule = LimitRule("soft", None, 10.0, persistence=3, hysteresis=1.0)
    # a 2-sample spike: no alarm; a 3-sample one: raised at its third sample
    v = np.array([5, 11, 12, 5, 5, 11, 12, 13, 5.0])
    r = check(np.arange(v.size), v, rule)
    assert [(x.index, x.action) for x in r.transitions] == [(7, "raise")]
    assert r.transitions[0].limit == 10.0 and "above soft limit 10" in r.transitions[0].message
    assert r.carry.active and r.carry.clear_streak == 1
    # hovering between 9 and 10 (inside the limit, not by the margin) never clears
    hover = np.full(50, 9.5)
    r2 = check(np.arange(50.0), hover, rule, r.carry)
    assert r2.transitions == () and r2.carry.active
    r3 = check(np.arange(3.0), np.array([8.9, 8.0, 8.5]), rule, r2.carry)
    assert [(x.index, x.action) for x in r3.transitions] == [(2, "clear")]
    assert not r3.carry.active


def test_low_limit_message_and_rules_of_a_parameter() -> None:
    rules = rules_for((2000.0, 9000.0), (1000.0, None), 2, 50.0, None)
    assert [r.kind for r in rules] == ["soft", "hard"]
    v = np.array([5000, 900, 800, 5000, 5000.0])
    soft, hard = check_parameter(np.arange(5.0), v, rules)
    assert [x.action for x in soft.transitions] == ["raise", "clear"]
    assert (
        soft.transitions[0].limit == 2000.0
        and "below soft limit 2000" in soft.transitions[0].message
    )
    assert hard.transitions[0].limit == 1000.0 and hard.rule.level == "hard"
    stuck = rules_for((None, None), (None, None), 3, 0.0, 4)
    assert [(r.kind, r.level, r.alarm_rule) for r in stuck] == [("stuck", "soft", "stuck")]
    assert rules_for((None, None), (None, None), 1, 0.0, None) == ()


def test_stuck_rule_across_batches() -> None:
    rule = LimitRule("stuck", persistence=5)
    r1 = check(np.arange(3.0), np.array([1.0, 2.0, 2.0]), rule)
    r2 = check(np.arange(3.0, 6.0), np.array([2.0, 2.0, 2.0]), rule, r1.carry)
    (tr,) = r2.transitions
    assert (tr.index, tr.action, tr.time) == (2, "raise", 5.0)
    assert tr.message == "stuck at 2 for 5 samples"
    r3 = check(np.array([6.0]), np.array([2.5]), rule, r2.carry)
    assert [x.action for x in r3.transitions] == ["clear"]
