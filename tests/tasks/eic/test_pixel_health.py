"""Noisy, dead and intermittent pixels recovered from simulated periods (known truth)."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.config import load_instrument
from svomflow.instruments.coded_mask import MaskGeometry
from svomflow.simulation.eclairs_pixel_health import PixelHealthScenario, simulate_pixel_health
from svomflow.tasks.eic.pixel_health import (
    PixelHealthConfig,
    _Sums,
    assess_pixels,
    neighbour_level,
    pixel_health,
)
from svomflow.tasks.eic.uniformity import flat_illumination

BIN_S = 1200.0


@pytest.fixture(scope="module")
def illumination():
    return flat_illumination(MaskGeometry.from_instrument(load_instrument("eclairs")), 0.86)


def expected_class(p, t_stop):
    """The class a perfect detector gives: one episode to the end is a change, not intermittence."""
    if p.kind != "intermittent":
        return {"noisy": "NOISY", "dead": "DEAD"}[p.kind]
    if len(p.episodes) == 1 and p.episodes[0][1] >= t_stop:
        return "DEAD" if p.mode == "off" else "NOISY"
    return "INTERMIT"


def score(sim, table):
    """Return found/missed/wrong-class per kind and the false flags."""
    found = {(q.y, q.z): q for q in table.pixels}
    truth = {(p.y, p.z): p for p in sim.pixels}
    out = {"false": [k for k in found if k not in truth], "missed": [], "wrong": [], "ok": []}
    for k, p in truth.items():
        q = found.get(k)
        if q is None:
            out["missed"].append(p)
        elif q.kind != expected_class(p, sim.scenario.t_stop):
            out["wrong"].append((p, q))
        else:
            out["ok"].append((p, q))
    return out


@pytest.fixture(scope="module")
def detectable(illumination):
    # noisy rates >= 0.3 counts/s: 68 % of a pixel's photon rate, far above the 5-sigma
    # limits of both tests (neighbours: 5 x 5.4 % scatter; own history: ~0.1 counts/s)
    sc = PixelHealthScenario(
        days=1.0, bin_s=BIN_S, noisy_rate=(0.3, 5.0), intermittent_rate=(0.5, 5.0)
    )
    sim = simulate_pixel_health(np.random.default_rng(21), sc)
    table, state, good, sigma_e = assess_pixels(sim.history, illumination, PixelHealthConfig())
    return sim, table, state, good, sigma_e


def test_every_detectable_bad_pixel_is_found_with_its_class(detectable):
    sim, table, *_ = detectable
    s = score(sim, table)
    assert s["missed"] == [] and s["wrong"] == []
    assert s["false"] == []  # ~6360 good pixels, expected false flags < 0.05 at 5 sigma


def test_onsets_and_duty_cycles_match_the_truth(detectable):
    sim, table, *_ = detectable
    h = sim.history
    t_live = h.exposure.sum()
    longest_gap = np.max(np.diff(np.flatnonzero(np.r_[True, h.exposure > 0.5 * BIN_S, True])))
    for p, q in score(sim, table)["ok"]:
        if p.kind == "intermittent" and q.kind == "INTERMIT":
            # each episode edge falls in one bin, judged either way
            tol = (2 * len(p.episodes) + 1) * BIN_S / t_live
            assert abs(q.duty_cycle - p.duty_cycle) <= tol, (p, q)
            continue
        onset = p.onset if p.kind != "intermittent" else p.episodes[0][0]
        if np.isnan(onset) or onset <= h.start[0]:
            assert np.isnan(q.onset) or q.onset <= h.start[0] + longest_gap * BIN_S
        else:
            # the change falls within a bin; an SAA gap just before hides it further
            assert abs(q.onset - onset) <= (1 + longest_gap) * BIN_S, (p, q)


def test_excess_rates_of_noisy_pixels_match_the_truth(detectable):
    sim, table, *_ = detectable
    for p, q in score(sim, table)["ok"]:
        if p.kind == "noisy":
            # the excess is measured against the pixel's own level before the change (or
            # the neighbours', whose scatter is sigma_e of the photon rate ~0.44 counts/s)
            assert abs(q.excess_rate - p.rate) < 0.1 * p.rate + 5 * 0.055 * 0.44, (p, q)


def test_good_bins_exclude_bad_episodes(detectable):
    sim, _, _, good, _ = detectable
    for p in sim.pixels:
        if p.kind == "dead":
            after = sim.history.start >= (
                sim.history.start[0] if np.isnan(p.onset) else p.onset + BIN_S
            )
            assert not good[after, p.y, p.z].any()
    # almost every bin of a normal pixel is good (unjudged SAA bins aside)
    judged = sim.history.exposure >= 0.5 * BIN_S
    bad = {(p.y, p.z) for p in sim.pixels}
    normal = np.ones(sim.history.shape, bool)
    for y, z in bad:
        normal[y, z] = False
    assert good[judged][:, normal].mean() > 0.9999


def test_a_clean_plane_has_no_bad_pixel(illumination):
    sc = PixelHealthScenario(days=1.0, bin_s=BIN_S, n_noisy=0, n_dead=0, n_intermittent=0)
    sim = simulate_pixel_health(np.random.default_rng(5), sc)
    result = pixel_health(sim.history, illumination, config=PixelHealthConfig())
    assert result.table.pixels == ()
    # the plane's robust pixel scatter is the injected efficiency spread (3 % module x 5 % pixel)
    assert abs(result.sigma_e - np.hypot(0.03, 0.05)) < 0.01
    assert result.products[0].type_code == "PIXBAD"


def test_neighbour_level_predicts_a_smooth_plane(illumination):
    level = 0.4 * illumination
    level_bad = level.copy()
    level_bad[10, 10] = 100.0  # a very noisy pixel does not move its neighbours' prediction
    pred = neighbour_level(level_bad, illumination, 5)
    ratio = pred / level
    assert np.all(np.abs(ratio - 1) < 1e-12)


def test_segment_sums_match_a_direct_weighted_fit():
    """The cumulative-sum fits equal per-pixel weighted least squares done plainly."""
    rng = np.random.default_rng(0)
    m, npx = 40, 7
    a = rng.uniform(300, 600, m)
    e = a / rng.uniform(0.75, 1.0, m)
    g = rng.uniform(0.3, 0.5, npx)
    r = np.where(np.arange(npx) % 2, rng.uniform(0.0, 2.0, npx), 0.0)
    c = rng.poisson(a[:, None] * g + e[:, None] * r).astype(float)
    sums = _Sums(c, a, e)
    i = rng.integers(0, 10, npx)
    j = rng.integers(20, m + 1, npx)
    chi, dof = sums.fit_chi2(i, j)
    for p in range(npx):
        sl = slice(i[p], j[p])
        x = np.column_stack([a[sl], e[sl]])
        w = 1.0 / a[sl]
        coef = np.linalg.solve(x.T @ (x * w[:, None]), x.T @ (c[sl, p] * w))
        lam = c[sl, p].sum() / a[sl].sum()
        ref = np.sum((c[sl, p] - x @ coef) ** 2 / (lam * a[sl]))
        assert chi[p] == pytest.approx(ref, rel=1e-8, abs=1e-8)
        assert dof[p] == (j[p] - i[p]) - 2
        assert sums.level(i, j)[p] == pytest.approx(lam, rel=1e-12)


@pytest.mark.slow
def test_monte_carlo_completeness_and_false_rate(illumination):
    """Completeness per class and false flags over 8 two-day periods (docs/eic_pixels.md)."""
    found = {"noisy": 0, "dead": 0, "intermittent": 0}
    total = dict.fromkeys(found, 0)
    false = 0
    for seed in range(8):
        sc = PixelHealthScenario(days=2.0, bin_s=600.0, noisy_rate=(0.3, 5.0))
        sim = simulate_pixel_health(np.random.default_rng(1000 + seed), sc)
        table, *_ = assess_pixels(sim.history, illumination, PixelHealthConfig())
        s = score(sim, table)
        false += len(s["false"])
        for p, _ in s["ok"]:
            found[p.kind] += 1
        for p in sim.pixels:
            total[p.kind] += 1
    for k in found:
        assert found[k] >= 0.95 * total[k], (k, found[k], total[k])
    assert false <= 2
