"""Flux errors when the fit's covariance is not positive definite (regularised, recorded)."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.tasks import spectral as sp
from svomflow.tasks.spectral.flux import regularise_covariance


def test_positive_definite_covariance_is_kept():
    cov = np.array([[4.0, 1.2], [1.2, 1.0]])
    out, changed, notes = regularise_covariance(cov, [3.0, 2.0])
    assert not changed and notes == []
    np.testing.assert_array_equal(out, cov)


def test_indefinite_covariance_is_projected_with_profile_diagonal():
    # correlation 1.3 between the first two parameters: an eigenvalue is negative
    sd = np.array([2.0, 0.5, 1.0])
    corr = np.array([[1.0, 1.3, 0.2], [1.3, 1.0, -0.1], [0.2, -0.1, 1.0]])
    cov = corr * np.outer(sd, sd)
    assert np.linalg.eigvalsh(cov)[0] < 0
    out, changed, notes = regularise_covariance(cov, [2.5, None, 1.0], ["K", "index", "epeak"])
    assert changed and "not positive definite" in notes[0]
    assert np.linalg.eigvalsh(out)[0] > 0
    np.testing.assert_allclose(out, out.T)
    # diagonal: the profile errors where given, the Hessian variance otherwise
    np.testing.assert_allclose(np.sqrt(np.diag(out)), [2.5, 0.5, 1.0], rtol=1e-9)
    r = out[0, 1] / np.sqrt(out[0, 0] * out[1, 1])
    assert 0.9 < r < 1.0  # the impossible correlation is brought back inside (-1, 1)


def test_fallback_correlations_are_used_when_positive_definite():
    cov = np.array([[1.0, 1.5], [1.5, 1.0]])  # impossible correlation 1.5
    fisher = np.array([[4.0, -1.0], [-1.0, 1.0]])  # correlation -0.5
    out, changed, notes = regularise_covariance(cov, [2.0, None], fallback=fisher)
    assert changed and "Fisher" in notes[0]
    np.testing.assert_allclose(out, [[4.0, -1.0], [-1.0, 1.0]])


def test_parameter_without_any_error_is_held():
    cov = np.array([[1.0, 0.0], [0.0, -0.3]])
    out, changed, notes = regularise_covariance(cov, None, ["a", "b"])
    assert changed and any("b has no usable error" in n for n in notes)
    assert out[1, 1] == 0.0 and out[0, 0] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def bright_cpl_fit(synth):
    rng = np.random.default_rng(21)
    truth = {"K": 0.05, "index": -0.8, "epeak": 300.0}
    ds = synth.simulate("cpl", truth, rng, synth.gaussian_response(), exposure=10.0)
    return sp.errors(sp.fit(ds, "cpl", stat="wstat"))


def test_flux_with_numerically_indefinite_covariance(bright_cpl_fit):
    """No warning (pytest turns warnings into errors), flag set, errors as the intact ones."""
    res = bright_cpl_fit
    intact = sp.flux(res, (10.0, 1000.0), "energy", n_samples=2000, seed=3)
    assert not intact.covariance_regularised and intact.notes == []
    cov = res.covariance.copy()
    w, v = np.linalg.eigh(cov)
    # flip the smallest eigenvalue's sign: what a noisy finite-difference Hessian gives
    broken = cov - 2.0 * w[0] * np.outer(v[:, 0], v[:, 0])
    assert np.linalg.eigvalsh(broken)[0] < 0
    res.covariance = broken
    try:
        reg = sp.flux(res, (10.0, 1000.0), "energy", n_samples=2000, seed=3)
    finally:
        res.covariance = cov
    assert reg.covariance_regularised and reg.to_dict()["covariance_regularised"] is True
    assert "Fisher" in reg.notes[0] and np.isfinite(reg.error_low) and np.isfinite(reg.error_high)
    # the quantiles of 2000 draws scatter by ~3 %; the Fisher correlations and the profile
    # errors describe this bright, near-Gaussian fit as well as the intact Hessian does
    width_intact = intact.error_high - intact.error_low
    width_reg = reg.error_high - reg.error_low
    assert width_reg == pytest.approx(width_intact, rel=0.15)
