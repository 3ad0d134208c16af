"""MXT simulator: reproducibility, counts vs input flux, frames, passes and calibration files."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.config import load_instrument
from svomflow.simulation.mxt import (
    MXTSimConfig,
    MXTSource,
    effective_area,
    simulate,
)

INST = load_instrument("mxt")


def _cfg(**kw):
    base = dict(
        duration_s=2000.0,
        sources=[MXTSource(150.0, 20.0, 0.05)],
        saa_s=0.0,
        earth_fraction=0.0,
        n_telemetry_gaps=0,
    )
    base.update(kw)
    return MXTSimConfig(**base)


def test_reproducible_from_seed():
    a = simulate(_cfg(), np.random.default_rng(3))
    b = simulate(_cfg(), np.random.default_rng(3))
    for pa, pb in zip(a.passes, b.passes, strict=True):
        for k in pa:
            assert np.array_equal(pa[k], pb[k], equal_nan=True)


def test_source_counts_match_flux_times_area():
    r = simulate(_cfg(), np.random.default_rng(4))
    # expected photons through the optics: flux (0.3-10 keV, Gamma=2) x <A> x T over 0.2-10 keV
    e = np.geomspace(0.2, 10.0, 20001)
    w = e**-2.0
    flux_02_10 = 0.05 * (1 / 0.2 - 1 / 10) / (1 / 0.3 - 1 / 10)
    mean_area = np.trapezoid(w * effective_area(e, INST), e) / np.trapezoid(w, e)
    mu = flux_02_10 * mean_area * 2000.0
    n = r.truth["sources"][0]["n_photons_detected_area"]
    assert abs(n - mu) < 4 * np.sqrt(mu)


def test_frames_quantise_times_and_passes_are_not_time_sorted():
    r = simulate(_cfg(n_passes=3, pass_overlap_s=20.0), np.random.default_rng(5))
    ft = float(INST.get("ccd.frame_time_s"))
    ev = r.passes[0]
    phase = (ev["TIME"] - r.config.tstart) / ft - 0.5
    assert np.allclose(phase, np.round(phase), atol=1e-6)
    starts = [p["TIME"].min() for p in r.passes]
    assert starts != sorted(starts)
    assert r.truth["n_duplicated_rows"] > 0


def test_psf_shape_recovered_from_photons():
    r = simulate(
        _cfg(sources=[MXTSource(150.0, 20.0, 0.5)], background_scale=0.0), np.random.default_rng(6)
    )
    ph = r.photons
    sel = ph["kept"] & (ph["source"] == 0)
    dx = ph["rawx"][sel] + 0.5 - 128.0
    dy = ph["rawy"][sel] + 0.5 - 128.0
    # fraction inside the core circle of radius gamma (pixels) vs the model's value
    frac = np.mean(np.hypot(dx, dy) < r.psf.gamma)
    expect = r.psf.fraction_in_circle(r.psf.gamma, step=0.5)
    n = sel.sum()
    assert frac == pytest.approx(expect, abs=4 * np.sqrt(expect * (1 - expect) / n) + 0.01)


def test_calibration_files_are_registered_once_in_the_home_caldb(svomflow_home, tmp_path):
    from svomflow.atomic import sha256_file
    from svomflow.calibration.caldb import open_caldb
    from svomflow.simulation.mxt import simulate_scenario

    spec = {"duration_s": 300.0, "n_passes": 1, "sources": []}
    first = simulate_scenario(spec, tmp_path / "a", np.random.default_rng(1))
    assert first["files"]["caldb"] == str((svomflow_home / "caldb").resolve())
    db = open_caldb()
    assert sorted(e.codename for e in db.entries()) == ["CTI", "GAIN", "PATTERN", "PSF"]
    # the same simulation again writes the same files: nothing new in the CALDB
    again = simulate_scenario(spec, tmp_path / "b", np.random.default_rng(1))
    for name in first["files"]["calibration"].values():
        assert sha256_file(tmp_path / "a" / name) == sha256_file(tmp_path / "b" / name)
    assert len(db.entries()) == 4 and again["files"]["caldb"] == first["files"]["caldb"]
    # another seed draws other gains and pattern fractions: those are registered and selected
    simulate_scenario(spec, tmp_path / "c", np.random.default_rng(2))
    assert sorted(e.codename for e in db.entries()) == [
        "CTI", "GAIN", "GAIN", "PATTERN", "PATTERN", "PSF",
    ]  # fmt: skip
    gain = db.select("GAIN", instrument="MXT", time="2026-03-03T00:00:00")
    assert gain.sha256 == sha256_file(tmp_path / "c" / "mxt_gain.fits")
    # and a simulation told not to register leaves the CALDB alone
    simulate_scenario({**spec, "caldb": False}, tmp_path / "d", np.random.default_rng(3))
    assert len(db.entries()) == 6
