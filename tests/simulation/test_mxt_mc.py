"""MXT Monte Carlo through the full chain (simulate -> merge -> calibrate -> detect)."""

from __future__ import annotations

import pytest
from scipy.stats import binom
from svomflow.simulation.mxt_mc import (
    FIELDS,
    completeness_table,
    field_trials,
    position_summary,
    run_trial,
)


def test_one_trial_matches_the_injected_source() -> None:
    t = run_trial(FIELDS["bright"], seed=7)
    assert t.matched == [True] and t.false_detections == 0
    assert t.error_arcsec[0] < 3 * t.r90_arcsec[0]  # one trial: not a 90 % check


def _coverage_ok(summary: dict, min_p: float = 0.001) -> None:
    n, k = summary["n"], round(summary["inside_r90"] * summary["n"])
    assert binom.ppf(min_p, n, 0.9) <= k <= binom.isf(min_p, n, 0.9) + 1, summary


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bright", "faint"])
def test_r90_coverage_single_source_fields(name: str) -> None:
    tr = field_trials(FIELDS[name], 60, seed=99)
    s = position_summary(tr)
    assert s["n"] >= 50
    _coverage_ok(s)


@pytest.mark.slow
def test_completeness_rises_with_flux_and_few_false_detections() -> None:
    rows = completeness_table([0.0005, 0.002, 0.01], 30, seed=5)
    comp = [r["completeness"] for r in rows]
    assert comp[-1] == 1.0 and comp[0] < comp[-1]
    assert all(r["false_per_field"] < 0.2 for r in rows)


@pytest.mark.slow
def test_crowded_field_resolves_the_close_pair() -> None:
    """Crowded field (a, b 4 arcmin apart at 2.5:1, c apart): the residual search finds b and
    a's r90 keeps its coverage (it collapsed to ~0.4 when b's photons pulled a)."""
    tr = field_trials(FIELDS["crowded"], 20, seed=2028)
    found_b = sum(t.matched[1] for t in tr)
    # measured 20/20; before the residual search 0.43 (40 trials): >= 15 of 20 has P = 4e-3 at 0.43
    assert found_b >= 15, found_b
    for i in range(3):
        _coverage_ok(position_summary(tr, i))
    assert sum(t.false_detections for t in tr) <= 2
