"""GRM simulator: dead time, count ratios vs direction, forward folding through the RSP."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.grm_response import (
    GRMResponseModel,
    channel_edges,
    detector_axes,
    grm_response,
)
from svomflow.instruments.spectra import Spectrum, sample_energies
from svomflow.products.ogip import write_rsp
from svomflow.simulation._kernels import nonparalyzable_deadtime
from svomflow.simulation.grm import grm_photon_area, simulate_grm, write_grm_l1
from svomflow.simulation.photons import PhotonList

ATT = Attitude(0.0, 0.0, 0.0)
MODEL = GRMResponseModel.from_instrument()
PL = Spectrum("powerlaw", k=1.0, index=-1.5)


def _reference_deadtime(t: np.ndarray, tau: float) -> np.ndarray:
    keep = np.zeros(t.size, bool)
    last = -np.inf
    for i, x in enumerate(t):
        if x - last >= tau:
            keep[i], last = True, x
    return keep


def test_deadtime_kernel_matches_reference() -> None:
    t = np.sort(np.random.default_rng(1).uniform(0, 0.05, 5000))
    assert np.array_equal(nonparalyzable_deadtime(t, 8e-6), _reference_deadtime(t, 8e-6))


@pytest.mark.parametrize("rate", [2e3, 2e4, 8e4])
def test_live_fraction_follows_nonparalyzable_law(rate: float) -> None:
    tau, dur = 8e-6, 20.0
    rng = np.random.default_rng(int(rate))
    n = rng.poisson(rate * dur)
    t = np.sort(rng.uniform(0, dur, n))
    recorded = nonparalyzable_deadtime(t, tau).sum()
    expected = n / (1 + rate * tau)
    # Recorded counts of a dead-time-limited Poisson process: variance ~ m / (1 + rate tau)^2.
    assert abs(recorded - expected) < 5 * np.sqrt(expected) / (1 + rate * tau) + 5


def _photons(rng: np.random.Generator, ra: float, dec: float, n: int) -> PhotonList:
    e = sample_energies(rng, PL, n, e_min=10.0, e_max=10000.0)
    return PhotonList(np.sort(rng.uniform(0, 100, n)), e, ra, dec, grm_photon_area())


def _fold(ra: float, dec: float, det: str, n_photons: int) -> np.ndarray:
    lo, hi, m, _ = grm_response((ra, dec), detector=det, attitude=ATT, model=MODEL)
    # Photon fluence per bin for n photons drawn on grm_photon_area() over 10 keV-10 MeV.
    fluence = np.array([PL.photon_flux(a, b) for a, b in zip(lo, hi, strict=True)])
    fluence *= n_photons / (PL.photon_flux(10.0, 10000.0) * grm_photon_area())
    return fluence @ m


@pytest.mark.parametrize("direction", [(0.0, 0.0), (30.0, 20.0), (300.0, -35.0)])
def test_detector_counts_follow_the_response_per_direction(direction: tuple[float, float]) -> None:
    rng = np.random.default_rng(7)
    n = 300_000
    sim = simulate_grm(
        [_photons(rng, *direction, n)],
        attitude=ATT,
        t_start=0,
        t_stop=100,
        rng=rng,
        background=False,
        calibration_source=False,
        dead_time_s=0.0,
    )
    for det, ev in sim.detectors.items():
        model = _fold(*direction, det, n)
        assert abs(ev.time.size - model.sum()) < 4 * np.sqrt(model.sum()) + 1


def test_count_ratios_change_with_direction() -> None:
    axes = detector_axes()
    # A source on a detector's axis gives that detector the most counts.
    for det, ax in axes.items():
        ra, dec = ATT.to_sky(ax)
        counts = {d: _fold(float(ra), float(dec), d, 10**5).sum() for d in axes}
        assert max(counts, key=counts.get) == det


def test_rsp_is_ogip_and_forward_folds_to_the_simulated_spectrum(tmp_path) -> None:
    rng = np.random.default_rng(3)
    n = 400_000
    ra, dec = 20.0, 10.0
    sim = simulate_grm(
        [_photons(rng, ra, dec, n)],
        attitude=ATT,
        t_start=0,
        t_stop=100,
        rng=rng,
        background=False,
        calibration_source=False,
        dead_time_s=0.0,
    )
    lo, hi, m, eb = grm_response((ra, dec), detector="GRD02", attitude=ATT, model=MODEL)
    path = write_rsp(
        tmp_path / "g2.rsp", lo, hi, m, eb, telescope="SVOM", instrument="GRM", detector="GRD02"
    )
    with fits.open(path) as h:
        mat = h["SPECRESP MATRIX"]
        assert mat.header["HDUCLAS3"] == "FULL" and mat.header["TLMIN4"] == 0
        matrix = np.asarray(mat.data["MATRIX"], float)
        e_lo = np.asarray(mat.data["ENERG_LO"], float)
        e_hi = np.asarray(mat.data["ENERG_HI"], float)
        assert h["EBOUNDS"].header["DETCHANS"] == matrix.shape[1]
    fluence = np.array([PL.photon_flux(a, b) for a, b in zip(e_lo, e_hi, strict=True)])
    fluence *= n / (PL.photon_flux(10.0, 10000.0) * grm_photon_area())
    model = fluence @ matrix
    counts = np.bincount(sim.detectors["GRD02"].pi, minlength=matrix.shape[1])
    # Group channels to >= 50 expected counts and test chi-square against its dof.
    cum = np.cumsum(model)
    groups = np.floor(cum / 50.0).astype(int)
    mg = np.bincount(groups, model)
    cg = np.bincount(groups, counts)
    ok = mg > 20
    chi2 = np.sum((cg[ok] - mg[ok]) ** 2 / mg[ok])
    dof = ok.sum()
    assert chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)


def test_am241_line_lands_at_its_energy() -> None:
    rng = np.random.default_rng(5)
    sim = simulate_grm([], attitude=ATT, t_start=0, t_stop=300, rng=rng, background=False)
    edges = channel_edges()
    pi = sim.detectors["GRD01"].pi
    centres = np.sqrt(edges[:-1] * edges[1:])
    mean = np.exp(np.mean(np.log(centres[pi])))
    assert mean == pytest.approx(59.54, rel=0.03)
    assert pi.size == pytest.approx(10.0 * 300, rel=5 / np.sqrt(3000))


def test_l1_file_layout_and_reproducibility(tmp_path) -> None:
    def run(seed: int, name: str):
        rng = np.random.default_rng(seed)
        sim = simulate_grm(
            [_photons(rng, 10.0, 5.0, 20000)], attitude=ATT, t_start=0, t_stop=100, rng=rng
        )
        return write_grm_l1(tmp_path / name, sim, attitude=ATT, trigger_time=10.0)

    a, b, c = run(1, "a.fits"), run(1, "b.fits"), run(2, "c.fits")
    with fits.open(a) as ha, fits.open(b) as hb, fits.open(c) as hc:
        names = [h.name for h in ha]
        assert names == ["PRIMARY", "EVENTS", "EVENTS", "EVENTS", "EBOUNDS", "GTI"]
        for k in (1, 2, 3):
            ev = ha["EVENTS", k]
            assert ev.header["DETNAM"] == f"GRD0{k}"
            assert ev.header["LIVETIME"] == pytest.approx(
                ev.header["ONTIME"] - len(ev.data) * ev.header["DEADTAU"]
            )
            assert np.all(np.diff(ev.data["TIME"]) >= 0)
            assert np.array_equal(ev.data["TIME"], hb["EVENTS", k].data["TIME"])
            assert np.array_equal(ev.data["PI"], hb["EVENTS", k].data["PI"])
        assert len(ha["EVENTS", 1].data) != len(hc["EVENTS", 1].data) or not np.array_equal(
            ha["EVENTS", 1].data["TIME"], hc["EVENTS", 1].data["TIME"]
        )
