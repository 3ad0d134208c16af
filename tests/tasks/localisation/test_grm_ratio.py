"""GRM count-ratio localisation: Monte Carlo coverage and input checks."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.errors import InputDataError
from svomflow.instruments.attitude import Attitude, angular_separation_deg
from svomflow.instruments.grm_response import GRMResponseModel
from svomflow.tasks.localisation.grm_ratio import (
    GRMLocalisationConfig,
    expected_band_counts,
    localise_grm,
)

ATT = Attitude(80.0, 10.0, 0.0)
MODEL = GRMResponseModel.from_instrument()


def test_localisation_covers_the_truth_at_about_90_percent() -> None:
    cfg = GRMLocalisationConfig(systematic_deg=0.0)
    rng = np.random.default_rng(12)
    inside, n_trials, errors = 0, 60, []
    for _ in range(n_trials):
        v = rng.normal(size=3)
        v[0] = abs(v[0]) + 0.8  # in front of the spacecraft
        v /= np.linalg.norm(v)
        resp = expected_band_counts(v, cfg, MODEL)[0]
        mu = resp * (3000.0 / resp.sum())
        bkg = np.full(3, 4000.0)
        net = rng.poisson(mu + bkg) - rng.poisson(bkg * 10) / 10.0
        loc = localise_grm(net, mu + bkg * 1.1, attitude=ATT, model=MODEL, config=cfg)
        ra, dec = ATT.to_sky(v)
        sep = float(angular_separation_deg(ra, dec, loc.ra_deg, loc.dec_deg))
        errors.append(sep)
        inside += sep < loc.error_radius_90_deg
    # Binomial(60, 0.9): 3 sigma band is about 0.78-1.0.
    assert inside / n_trials > 0.75
    assert np.median(errors) < 20.0


def test_systematic_is_added_in_quadrature() -> None:
    v = np.array([0.9, 0.3, -0.2]) / np.linalg.norm([0.9, 0.3, -0.2])
    cfg0 = GRMLocalisationConfig(systematic_deg=0.0)
    resp = (
        expected_band_counts(v, cfg0, MODEL)[0]
        * 1e4
        / expected_band_counts(v, cfg0, MODEL)[0].sum()
    )
    a = localise_grm(resp, resp + 1000, attitude=ATT, model=MODEL, config=cfg0)
    b = localise_grm(
        resp,
        resp + 1000,
        attitude=ATT,
        model=MODEL,
        config=GRMLocalisationConfig(systematic_deg=5.0),
    )
    assert b.error_radius_1sigma_deg == pytest.approx(np.hypot(a.error_radius_1sigma_deg, 5.0))


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(InputDataError, match="one per GRM detector"):
        localise_grm([1.0, 2.0], [1.0, 1.0], attitude=ATT, model=MODEL)
    with pytest.raises(InputDataError, match="no net source counts"):
        localise_grm([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], attitude=ATT, model=MODEL)


def test_coarse_grid_read_from_the_cache_equals_the_recomputed_one(tmp_path, monkeypatch) -> None:
    """The band responses kept across processes are the computed ones, bit for bit."""
    import svomflow.array_cache as array_cache
    from svomflow.tasks.localisation import grm_ratio

    monkeypatch.setattr(array_cache, "cache_folder", lambda: tmp_path)
    cfg = GRMLocalisationConfig(n_grid=2000)
    key = grm_ratio._config_key(cfg)
    grm_ratio._coarse_grid.cache_clear()
    grid, w, resp = grm_ratio._coarse_grid(key, cfg.n_grid, cfg.front_only, MODEL)
    assert len(list(tmp_path.glob("grm-band-response-*.npz"))) == 1
    grm_ratio._coarse_grid.cache_clear()  # as a fresh process: read from the file
    grid2, w2, resp2 = grm_ratio._coarse_grid(key, cfg.n_grid, cfg.front_only, MODEL)
    np.testing.assert_array_equal(grid2, grid)
    np.testing.assert_array_equal(w2, w)
    np.testing.assert_array_equal(resp2, resp)
    # and both are what the public per-direction response gives
    np.testing.assert_array_equal(resp, expected_band_counts(grid, cfg, MODEL))


def test_coarse_grid_cache_key_follows_calibration_and_band(tmp_path, monkeypatch) -> None:
    """A changed RSPPAR number or band is another file: a stale response is never read."""
    import dataclasses

    import svomflow.array_cache as array_cache
    from svomflow.tasks.localisation import grm_ratio

    monkeypatch.setattr(array_cache, "cache_folder", lambda: tmp_path)
    cfg = GRMLocalisationConfig(n_grid=1000)
    thinner = GRMResponseModel(
        dataclasses.replace(MODEL.geometry, thickness_cm=MODEL.geometry.thickness_cm * 0.5),
        MODEL.axes,
    )
    other_band = GRMLocalisationConfig(n_grid=1000, band_kev=(20.0, 100.0))
    grm_ratio._coarse_grid.cache_clear()
    runs = [
        grm_ratio._coarse_grid(grm_ratio._config_key(c), c.n_grid, c.front_only, m)[2]
        for c, m in [(cfg, MODEL), (cfg, thinner), (other_band, MODEL)]
    ]
    assert len(list(tmp_path.glob("grm-band-response-*.npz"))) == 3
    assert not np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])
    grm_ratio._coarse_grid.cache_clear()
    again = grm_ratio._coarse_grid(grm_ratio._config_key(cfg), 1000, True, thinner)[2]
    np.testing.assert_array_equal(again, runs[1])
