"""The orbit-rate simulator: the SAA excess follows its truth polygon; drift and cases as asked."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.simulation.eclairs_orbit_rates import (
    SaaRateModel,
    signed_distance_deg,
    simulate_orbit_rates,
    truth_contains,
    variant_polygon,
)
from svomflow.simulation.orbit import load_orbit
from svomflow.tasks.eic.saa import polygon_iou


def test_rate_exceeds_level_exactly_inside_the_truth_polygon() -> None:
    poly = variant_polygon("nominal")
    rates = simulate_orbit_rates(days=2, seed=7, modulation=0.0, drift_per_day=0.0)
    rel = rates.rate / 2700.0 - 1.0
    d = signed_distance_deg(rates.lon_deg, rates.lat_deg, np.array(poly))
    # 27000 counts per 10 s sample: 0.6 % Poisson noise, i.e. 0.06 deg of distance at the
    # edge (excess e-folds over 3 deg); beyond 0.3 deg the level separates inside from out
    clear = np.abs(d) > 0.3
    assert clear.sum() > 10_000 and (d[clear] > 0).sum() > 500
    np.testing.assert_array_equal((rel >= 1.0)[clear], (d > 0)[clear])
    # and the mean rate follows the model within Poisson errors
    model = SaaRateModel(poly)
    expected = 2700.0 * (1.0 + model.excess(rates.lon_deg, rates.lat_deg))
    pull = (rates.rate - expected) / np.sqrt(expected / 10.0)
    assert abs(float(pull.mean())) < 5.0 / np.sqrt(pull.size)
    assert float(pull.std()) == pytest.approx(1.0, abs=0.03)


def test_orbit_and_inside_agree_with_orbit_module() -> None:
    orbit = load_orbit()
    rates = simulate_orbit_rates(days=1, seed=1)
    np.testing.assert_array_equal(
        truth_contains(orbit.saa_polygon_lon_lat_deg, rates.lon_deg, rates.lat_deg),
        orbit.in_saa(rates.time),
    )
    assert np.abs(rates.lat_deg).max() <= orbit.inclination_deg + 1e-9


def test_drift_and_reproducibility() -> None:
    orbit = load_orbit()
    a = simulate_orbit_rates(days=4, seed=2, drift_per_day=0.2, modulation=0.0)
    b = simulate_orbit_rates(days=4, seed=2, drift_per_day=0.2, modulation=0.0)
    np.testing.assert_array_equal(a.rate, b.rate)
    quiet = ~orbit.in_saa(a.time) & (
        signed_distance_deg(a.lon_deg, a.lat_deg, np.array(variant_polygon("nominal"))) < -15
    )
    day0 = np.median(a.rate[quiet & (a.time < 86400)])
    day3 = np.median(a.rate[quiet & (a.time >= 3 * 86400)])
    assert day3 / day0 == pytest.approx((1 + 0.2 * 3.5) / (1 + 0.2 * 0.5), rel=0.01)


def test_cases_are_built_to_differ() -> None:
    lat = (-30.0, 30.0)
    nominal = [np.array(variant_polygon("nominal"))]
    for case in ("shifted", "reshaped"):
        other = [np.array(variant_polygon(case))]
        assert polygon_iou(nominal, other, lat) < 0.8
    with pytest.raises(ValueError):
        variant_polygon("elsewhere")  # type: ignore[arg-type]
