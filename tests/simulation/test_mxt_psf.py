"""The foreign MXT PSF generator (Moffat core, exponential arms) and its use by the simulator."""

import math

import numpy as np
import pytest
from svomflow.config import load_instrument
from svomflow.errors import ConfigError
from svomflow.instruments.mxt_calibration import PSFModel
from svomflow.simulation.mxt_psf import MoffatExpPSF, psf_generator

INST = load_instrument("mxt")
SCALE = float(INST.get("ccd.pixel_scale_arcsec"))
MODEL = PSFModel.from_instrument(INST)


def test_generator_scales_the_model_numbers():
    gen = psf_generator({"core_factor": 0.6, "arm_factor": 2.5}, MODEL, SCALE)
    want = MODEL.to_arcmin(SCALE)
    assert gen.core_fwhm_arcmin == pytest.approx(0.6 * want["core_fwhm_arcmin"])
    assert gen.arm_length_arcmin == pytest.approx(2.5 * want["arm_length_arcmin"])
    assert gen.arm_fraction == pytest.approx(want["arm_fraction"])
    assert psf_generator({"kind": "model"}, MODEL, SCALE) is None
    assert psf_generator(None, MODEL, SCALE) is None
    with pytest.raises(ConfigError, match="unknown key"):
        psf_generator({"core_factr": 0.5}, MODEL, SCALE)
    with pytest.raises(ConfigError, match="unknown kind"):
        psf_generator({"kind": "airy"}, MODEL, SCALE)


def test_samples_follow_the_stated_profiles():
    """Core: the Moffat median radius alpha sqrt(2^(1/(beta-1)) - 1); arms: 90 % of their
    photons within the stated tip-to-tip length; fractions as given."""
    gen = MoffatExpPSF(
        core_fwhm_arcmin=4.0, arm_length_arcmin=40.0, arm_fraction=0.5, core_fraction=0.3,
        core_beta=2.5, halo_fwhm_arcmin=30.0,
    )  # fmt: skip
    rng = np.random.default_rng(1)
    n = 400_000
    dx, dy = gen.sample(n, rng, SCALE)
    to_pix = 60.0 / SCALE
    # photons on the arms: far along one axis and within 4 sigma across it (the core and the
    # halo contribute little there at 12-20 arcmin)
    sig_w = 1.5 * to_pix / 2.3548
    along = np.where(
        np.abs(dy) < 4 * sig_w, np.abs(dx), np.where(np.abs(dx) < 4 * sig_w, np.abs(dy), np.nan)
    )
    h = 20.0 * to_pix / math.log(10.0)  # Laplace scale of a 40' (90 %) arm
    # ratio of arm photons between 12-16' and 16-20' along: exp(-4' / h') for an exponential
    a = np.sum((along > 12 * to_pix) & (along <= 16 * to_pix))
    b = np.sum((along > 16 * to_pix) & (along <= 20 * to_pix))
    assert b / a == pytest.approx(math.exp(-4 * to_pix / h), rel=0.08)
    # the core alone: draw with arm and halo fractions 0
    core = MoffatExpPSF(core_fwhm_arcmin=4.0, arm_length_arcmin=40.0, arm_fraction=0.0,
                        core_fraction=1.0, core_beta=2.5)  # fmt: skip
    cx, cy = core.sample(200_000, rng, SCALE)
    alpha = 0.5 * 4.0 * to_pix / math.sqrt(2 ** (1 / 2.5) - 1)
    med = alpha * math.sqrt(2 ** (1 / 1.5) - 1)
    assert np.median(np.hypot(cx, cy)) == pytest.approx(med, rel=0.01)


def test_simulator_writes_the_model_and_records_the_sky_psf(tmp_path):
    from svomflow.instruments.mxt_calibration import read_psf
    from svomflow.simulation.mxt import config_from_mapping, simulate, write_simulation

    spec = {
        "duration_s": 400.0,
        "psf": {"core_factor": 0.5, "arm_factor": 3.0},
        "sources": [{"name": "s", "offset_arcmin": [0.0, 0.0], "flux_ph_cm2_s": 0.2}],
    }
    res = simulate(config_from_mapping(spec), np.random.default_rng(2))
    truth = write_simulation(res, tmp_path, caldb=False)
    assert truth["psf"]["generator"] == "moffat-exp"
    assert truth["psf"]["sky"]["arm_length_arcmin"] == pytest.approx(60.0)
    written = read_psf(tmp_path / truth["files"]["calibration"]["psf"])
    assert written.to_arcmin(SCALE)["arm_length_arcmin"] == pytest.approx(20.0, rel=1e-4)
    # the photons follow the sky's PSF: on the cross 12-25' from the source the exponential
    # arms put ~14 % of the photons (the model's arms end at 10'; its halo gives ~2 %)
    ph = res.photons
    src = ph["source"] == 0
    x = np.abs(ph["rawx"][src] + 0.5 - truth["sources"][0]["x_pix"]) * SCALE / 60.0
    y = np.abs(ph["rawy"][src] + 0.5 - truth["sources"][0]["y_pix"]) * SCALE / 60.0
    w = 4 * 1.5 / 2.3548
    on_cross = ((y < w) & (x > 12) & (x < 25)) | ((x < w) & (y > 12) & (y < 25))
    assert 0.08 < on_cross.mean() < 0.2, on_cross.mean()
