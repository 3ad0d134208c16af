"""GRB source models: pulses, normalisation, truth values and photon sampling statistics."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from svomflow.instruments.spectra import Spectrum, band, sample_energies
from svomflow.simulation.grb import (
    GRBModel,
    NorrisPulse,
    SpectralEvolution,
    draw_grb,
    fit_t90_populations,
    load_populations,
)


def _model(evolution: str = "none") -> GRBModel:
    return GRBModel(
        (NorrisPulse(0.0, 1.0, 3.0, 1.0), NorrisPulse(6.0, 0.5, 2.0, 0.6)),
        Spectrum("band", alpha=-1.0, beta=-2.3, epeak=300.0),
        peak_flux=10.0,
        ra_deg=10.0,
        dec_deg=-5.0,
        t0=1000.0,
        evolution=SpectralEvolution(evolution, decay_time_s=4.0),
    )


def test_norris_pulse_integral_matches_quadrature() -> None:
    p = NorrisPulse(0.3, 0.7, 2.5, 2.0)
    t = np.linspace(0.3, p.t_end, 400_001)
    numeric = np.trapezoid(p.rate(t), t)
    assert numeric == pytest.approx(p.integral(), rel=1e-6)
    assert p.rate(np.array([p.t_peak]))[0] == pytest.approx(2.0, rel=1e-12)


def test_band_is_continuous_and_flux_matches_quadrature() -> None:
    sp = Spectrum("band", k=0.05, alpha=-0.8, beta=-2.5, epeak=400.0)
    e_b = (sp.alpha - sp.beta) * sp.epeak / (2 + sp.alpha)
    lo, hi = band([e_b * (1 - 1e-9), e_b * (1 + 1e-9)], 0.05, -0.8, -2.5, 400.0)
    assert lo == pytest.approx(hi, rel=1e-6)
    from scipy.integrate import quad

    ref = quad(lambda e: sp.evaluate(e), 10, 1000, points=[e_b], limit=200)[0]
    assert sp.photon_flux(10, 1000) == pytest.approx(ref, rel=1e-4)


def test_peak_flux_normalisation_is_exact_on_its_timescale() -> None:
    m = _model("decay")
    pf = m.peak_fluxes(10.0, 1000.0)
    assert pf["1"]["flux"] == pytest.approx(10.0, rel=1e-9)
    # Shorter windows catch a higher peak.
    assert pf["0.064"]["flux"] >= pf["1.024"]["flux"]


def test_drawn_family_burst_has_the_target_t90() -> None:
    rng = np.random.default_rng(4)
    m = draw_grb(rng, "short", ra_deg=0, dec_deg=0, peak_flux=5.0, t90_s=0.4)
    assert m.durations(10.0, 1000.0)["t90"] == pytest.approx(0.4, rel=1e-4)


def test_hard_to_soft_evolution_lengthens_soft_band_t90() -> None:
    m = _model("decay")
    assert m.durations(15.0, 50.0)["t90"] > m.durations(300.0, 1000.0)["t90"]


@pytest.mark.parametrize("evolution", ["none", "decay", "tracking"])
def test_sampled_counts_and_t90_agree_with_the_model(evolution: str) -> None:
    m = _model(evolution)
    rng = np.random.default_rng(11)
    kw = {
        "area_cm2": 300.0,
        "t_start": 995.0,
        "t_stop": 1100.0,
        "e_min_kev": 50.0,
        "e_max_kev": 300.0,
    }
    pl = m.sample_photons(rng, **kw)
    expected = m.expected_photons(**kw)
    assert abs(len(pl) - expected) < 4 * np.sqrt(expected)
    truth = m.durations(50.0, 300.0)
    q05, q95 = np.quantile(pl.time - m.t0, [0.05, 0.95])
    # Order-statistic error of a quantile: sqrt(p(1-p)/N) / pdf(q), pdf from the model.
    total = expected / kw["area_cm2"]
    errs = []
    for p, q in ((0.05, truth["t90_start"]), (0.95, truth["t90_start"] + truth["t90"])):
        pdf = m.photon_flux(np.array([q]), 50.0, 300.0)[0] / total
        errs.append(np.sqrt(p * (1 - p) / len(pl)) / pdf)
    assert abs((q95 - q05) - truth["t90"]) < 4 * np.hypot(*errs)
    assert abs(q05 - truth["t90_start"]) < 4 * errs[0]


def test_sampled_energies_follow_the_spectrum() -> None:
    from scipy.stats import kstest

    sp = Spectrum("cpl", index=-1.2, epeak=150.0)
    e = sample_energies(np.random.default_rng(2), sp, 20000, e_min=20.0, e_max=2000.0)

    def cdf(x: np.ndarray) -> np.ndarray:
        return np.array(
            [sp.photon_flux(20.0, xi) if xi > 20.0 else 0.0 for xi in np.atleast_1d(x)]
        ) / sp.photon_flux(20.0, 2000.0)

    assert kstest(e[:3000], cdf).pvalue > 1e-3


def test_sampling_is_reproducible_from_the_seed() -> None:
    m = _model("decay")
    kw = {
        "area_cm2": 100.0,
        "t_start": 990.0,
        "t_stop": 1050.0,
        "e_min_kev": 10.0,
        "e_max_kev": 1e4,
    }
    a = m.sample_photons(np.random.default_rng(5), **kw)
    b = m.sample_photons(np.random.default_rng(5), **kw)
    c = m.sample_photons(np.random.default_rng(6), **kw)
    assert np.array_equal(a.time, b.time) and np.array_equal(a.energy_kev, b.energy_kev)
    assert len(a) != len(c) or not np.array_equal(a.time, c.time)


def test_fit_recovers_a_known_mixture() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-0.3, 0.4, 3000), rng.normal(1.5, 0.45, 9000)])
    short, long_ = fit_t90_populations(10**x)
    assert short.mu_log10_t90 == pytest.approx(-0.3, abs=0.05)
    assert long_.sigma_log10_t90 == pytest.approx(0.45, abs=0.03)
    assert short.weight == pytest.approx(0.25, abs=0.03)


@pytest.mark.realdata
def test_packaged_populations_match_a_refit_of_the_gbm_catalog(shared_data) -> None:
    path = shared_data / "catalogs" / "fermi_gbm_t90.csv"
    with path.open() as fh:
        t90 = np.array([float(r["t90"]) for r in csv.DictReader(fh) if r["t90"]])
    short, long_ = fit_t90_populations(t90[t90 > 0])
    fams = load_populations()
    for fit, pkg in ((short, fams["short"]), (long_, fams["long"])):
        assert fit.mu_log10_t90 == pytest.approx(pkg.mu_log10_t90, abs=2e-3)
        assert fit.sigma_log10_t90 == pytest.approx(pkg.sigma_log10_t90, abs=2e-3)
        assert fit.weight == pytest.approx(pkg.weight, abs=2e-3)
