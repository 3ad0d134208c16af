"""Limit checks of housekeeping samples: soft/hard limits, persistence, hysteresis, stuck values.

Pure and vectorised: each rule turns a time-ordered batch of samples into the alarm
transitions it causes (raise, clear) and the state to carry into the next batch, so checking
a day in one call or in 1000 calls gives the same alarms.

* **limit** rules (``soft``, ``hard``): a sample is *out* when below ``low`` or above
  ``high``. An alarm is raised at the ``persistence``-th consecutive out sample. It clears at
  the ``persistence``-th consecutive sample back inside the limits by at least the
  ``hysteresis`` margin (``low + h <= v <= high - h``); samples between the limit and the
  margin neither raise nor clear, so a value hovering at the limit does not flap.
* **stuck** rule: ``stuck_after`` identical consecutive samples (a frozen sensor or a stale
  telemetry field) raise an alarm; the first different value clears it.

Only the transitions are a Python loop (a handful per batch); every per-sample quantity is a
NumPy array operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

__all__ = [
    "Carry",
    "CheckResult",
    "LimitRule",
    "Transition",
    "check",
    "check_parameter",
    "rules_for",
    "run_lengths",
    "with_active",
]

RuleKind = Literal["soft", "hard", "stuck"]


@dataclass(frozen=True)
class LimitRule:
    """One check of one parameter.

    Attributes
    ----------
    kind
        ``soft`` or ``hard`` (limits), or ``stuck`` (identical consecutive values).
    low, high
        Limits (``None``: none on that side); unused by ``stuck``.
    persistence
        Consecutive samples needed to raise, and to clear (limits); identical consecutive
        samples that mean stuck (``stuck``).
    hysteresis
        Margin inside the limits a value must reach to count towards clearing.
    """

    kind: RuleKind
    low: float | None = None
    high: float | None = None
    persistence: int = 1
    hysteresis: float = 0.0

    @property
    def level(self) -> str:
        """Alarm level of the rule (a stuck sensor is a soft alarm)."""
        return "hard" if self.kind == "hard" else "soft"

    @property
    def alarm_rule(self) -> str:
        """``limit`` or ``stuck`` (the alarm's ``rule``)."""
        return "stuck" if self.kind == "stuck" else "limit"


@dataclass(frozen=True)
class Carry:
    """State of a rule between batches.

    Attributes
    ----------
    streak
        Consecutive out samples (identical samples for ``stuck``) at the end of the batch.
    clear_streak
        Consecutive clearing samples at the end of the batch.
    active
        Whether an alarm of this rule is open.
    last_value
        The last sample (``stuck`` compares the next batch's first sample with it).
    """

    streak: int = 0
    clear_streak: int = 0
    active: bool = False
    last_value: float | None = None


@dataclass(frozen=True)
class Transition:
    """An alarm raised or cleared at sample ``index`` of the batch."""

    index: int
    time: float
    action: Literal["raise", "clear"]
    value: float
    limit: float | None
    message: str


@dataclass(frozen=True)
class CheckResult:
    """Transitions of one rule over a batch and the state to carry on."""

    rule: LimitRule
    transitions: tuple[Transition, ...]
    carry: Carry


def run_lengths(mask: np.ndarray, carry: int = 0) -> np.ndarray:
    """Return, for each sample, how many consecutive True values end there.

    ``carry`` is the run length at the end of the previous batch, added to a run that
    starts at the first sample.
    """
    m = np.asarray(mask, dtype=bool)
    idx = np.arange(m.size)
    last_false = np.maximum.accumulate(np.where(~m, idx, -1)) if m.size else idx
    runs = idx - last_false
    # runs that began before this batch continue the previous batch's run
    runs = np.where(last_false < 0, runs + carry, runs)
    return np.where(m, runs, 0)


def _out_and_clear(v: np.ndarray, rule: LimitRule) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros(v.size, dtype=bool)
    clear = np.ones(v.size, dtype=bool)
    h = rule.hysteresis
    if rule.low is not None:
        out |= v < rule.low
        clear &= v >= rule.low + h
    if rule.high is not None:
        out |= v > rule.high
        clear &= v <= rule.high - h
    return out, clear


def _first_at_or_after(candidates: np.ndarray, start: int) -> int | None:
    k = int(np.searchsorted(candidates, start))
    return int(candidates[k]) if k < candidates.size else None


def check(t: np.ndarray, v: np.ndarray, rule: LimitRule, carry: Carry | None = None) -> CheckResult:
    """Apply one rule to a time-ordered batch; return its transitions and the new carry."""
    carry = carry or Carry()
    t = np.asarray(t, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if v.size == 0:
        return CheckResult(rule, (), carry)
    if rule.kind == "stuck":
        prev = np.r_[np.nan if carry.last_value is None else carry.last_value, v[:-1]]
        same = v == prev
        # run of equal *pairs*; n identical samples are n-1 equal pairs
        streak = run_lengths(same, carry.streak)
        raise_at = np.flatnonzero(streak == rule.persistence - 1)
        clear_at = np.flatnonzero(~same)
        clear_runs = (~same).astype(np.int64)
        out_runs = streak
    else:
        out, clear = _out_and_clear(v, rule)
        out_runs = run_lengths(out, carry.streak)
        clear_runs = run_lengths(clear, carry.clear_streak)
        raise_at = np.flatnonzero(out_runs == rule.persistence)
        clear_at = np.flatnonzero(clear_runs == rule.persistence)
    transitions = []
    active = carry.active
    pos = 0
    while True:
        nxt = _first_at_or_after(clear_at if active else raise_at, pos)
        if nxt is None:
            break
        transitions.append(_transition(t, v, rule, nxt, "clear" if active else "raise"))
        active = not active
        pos = nxt + 1
    new_carry = Carry(
        streak=int(out_runs[-1]),
        clear_streak=int(clear_runs[-1]),
        active=active,
        last_value=float(v[-1]),
    )
    return CheckResult(rule, tuple(transitions), new_carry)


def _transition(
    t: np.ndarray, v: np.ndarray, rule: LimitRule, i: int, action: Literal["raise", "clear"]
) -> Transition:
    value = float(v[i])
    if rule.kind == "stuck":
        limit = None
        if action == "raise":
            msg = f"stuck at {value:g} for {rule.persistence} samples"
        else:
            msg = f"changing again ({value:g})"
    elif action == "raise":
        low_side = rule.low is not None and value < rule.low
        limit = rule.low if low_side else rule.high
        side = "below" if low_side else "above"
        msg = f"{value:g} {side} {rule.kind} limit {limit:g} for {rule.persistence} samples"
    else:
        limit = None
        msg = f"back within {rule.kind} limits ({value:g})"
    return Transition(int(i), float(t[i]), action, value, limit, msg)


def rules_for(
    soft: tuple[float | None, float | None],
    hard: tuple[float | None, float | None],
    persistence: int,
    hysteresis: float,
    stuck_after: int | None,
) -> tuple[LimitRule, ...]:
    """Return the rules of a parameter: soft and hard when it has limits, stuck if asked."""
    rules = []
    for kind, (lo, hi) in (("soft", soft), ("hard", hard)):
        if lo is not None or hi is not None:
            rules.append(LimitRule(kind, lo, hi, persistence, hysteresis))  # type: ignore[arg-type]
    if stuck_after:
        rules.append(LimitRule("stuck", persistence=stuck_after))
    return tuple(rules)


def check_parameter(
    t: np.ndarray,
    v: np.ndarray,
    rules: Sequence[LimitRule],
    carries: Sequence[Carry | None] | None = None,
) -> tuple[CheckResult, ...]:
    """Apply every rule of a parameter to one batch (``carries`` in the order of ``rules``)."""
    carries = carries or [None] * len(rules)
    return tuple(check(t, v, r, c) for r, c in zip(rules, carries, strict=True))


def with_active(carry: Carry, active: bool) -> Carry:
    """Return ``carry`` with its open-alarm flag set (an alarm cleared by hand, e.g.)."""
    return replace(carry, active=active)
