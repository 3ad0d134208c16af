"""Crude classification: stored mixture vs refit, calibration of p_short, non-GRB flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from svomflow.errors import ConfigError
from svomflow.tasks.classification import (
    ClassificationConfig,
    KnownSource,
    classify,
    fit_lognormal_mixture,
    load_catalog_t90,
    p_short,
    packaged_mixture,
)

CATALOGS = {"fermi_gbm": "fermi_gbm_t90.csv", "swift_bat": "swift_bat_grb_summary.txt"}


@pytest.mark.parametrize("name", sorted(CATALOGS))
def test_stored_mixture_matches_refit(shared_data: Path, name: str) -> None:
    t90 = load_catalog_t90(shared_data / "catalogs" / CATALOGS[name])
    fit = fit_lognormal_mixture(t90)
    stored = packaged_mixture(name)
    for key in ("w_short", "mu_short", "sigma_short", "mu_long", "sigma_long"):
        assert getattr(stored, key) == pytest.approx(getattr(fit, key), abs=6e-5)


def test_mixture_describes_gbm_catalog(shared_data: Path) -> None:
    t90 = load_catalog_t90(shared_data / "catalogs" / "fermi_gbm_t90.csv")
    m = packaged_mixture("fermi_gbm")
    edges = np.linspace(-1.5, 3.0, 19)
    obs = np.histogram(np.log10(t90), bins=edges)[0]
    x = np.linspace(edges[0], edges[-1], 4501)
    ds, dl = m.densities(10.0**x)
    dens = ds + dl
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(x))])
    exp = np.diff(np.interp(edges, x, cdf)) * t90.size
    # a two-lognormal model is not exact; every bin within 4 sigma plus 15 % of its count
    assert np.all(np.abs(obs - exp) < 4 * np.sqrt(exp + 1) + 0.15 * exp)
    ts = np.logspace(-1, 2, 3001)
    cross = ts[np.argmin(np.abs(m.p_short(ts) - 0.5))]
    assert 2.0 < cross < 5.0  # the classical short/long boundary region


def test_p_short_is_calibrated_on_labelled_draws() -> None:
    m = packaged_mixture("fermi_gbm")
    rng = np.random.default_rng(0)
    t90, short = m.sample(rng, 20000)
    p = m.p_short(t90)
    edges = np.linspace(0, 1, 11)
    k = np.clip(np.digitize(p, edges) - 1, 0, 9)
    for b in range(10):
        sel = k == b
        if sel.sum() < 50:
            continue
        frac = short[sel].mean()
        expected = p[sel].mean()
        sigma = np.sqrt(expected * (1 - expected) / sel.sum()) + 1e-3
        assert abs(frac - expected) < 4 * sigma


def test_p_short_with_error_and_classes() -> None:
    assert p_short(0.2) > 0.95
    assert p_short(64.0) < 0.01
    # a large error pulls the probability towards the middle
    assert p_short(0.2, 0.5) < p_short(0.2)
    assert 0.0 < p_short(3.0, 1.0) < 1.0
    c = classify(64.0, 1.5)
    assert c.klass == "long" and c.flags == ()
    c = classify(0.3, 0.05)
    assert c.klass == "short" and c.p_short > 0.9
    with pytest.raises(ValueError):
        p_short(-1.0)
    with pytest.raises(ConfigError, match="no stored"):
        packaged_mixture("konus")


def test_non_grb_flags() -> None:
    cfg = ClassificationConfig(
        known_sources=[KnownSource(name="Cyg X-1", ra_deg=299.59, dec_deg=35.20, radius_deg=0.5)]
    )
    c = classify(20.0, 2.0, cfg, position=(299.8, 35.3, 0.2))
    assert c.klass == "known_source" and "Cyg X-1" in c.flags[0]
    assert classify(20.0, 2.0, cfg, position=(10.0, -5.0, 0.2)).klass == "long"
    one_det = {"n0": (500.0, 30.0), "n1": (10.0, 20.0), "n2": (-5.0, 20.0)}
    assert classify(0.05, 0.01, detector_net_counts=one_det).klass == "particle"
    # 35 s in one detector only: a burst behind the other detectors, not a hit in one crystal
    far = classify(35.0, 1.7, detector_net_counts=one_det)
    assert far.klass == "long" and any(f.startswith("one_detector") for f in far.flags)
    three = {"n0": (500.0, 30.0), "n1": (300.0, 25.0), "n2": (-5.0, 20.0)}
    assert classify(0.05, 0.01, detector_net_counts=three).klass == "short"
    assert classify(0.002, 0.001, soft_band_significance=1.0).klass == "particle"
    assert classify(0.002, 0.001, soft_band_significance=8.0).klass == "short"
    assert classify(0.1, 0.02, hardness=0.03).klass == "soft_repeater"
    assert classify(0.1, 0.02, hardness=1.5).klass == "short"
