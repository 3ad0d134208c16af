"""Spectral extraction from events, grouping, written OGIP files and bad-input errors."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from svomflow.config import load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.eclairs_detector import EclairsResponse
from svomflow.products.burst_events import read_burst_events
from svomflow.products.ogip import TimeReference, write_hdulist
from svomflow.products.ogip_spectra import read_pha
from svomflow.simulation.xband_mc import read_burst
from svomflow.tasks import spectral as sp
from svomflow.tasks.coded_mask.response import eclairs_response, write_eclairs_rsp
from svomflow.tasks.xband.datasets import FitDataset
from svomflow.tasks.xband.fitting import fit_datasets
from svomflow.tasks.xband.spectra import (
    detector_background,
    extract_spectrum,
    group_channels,
    spectra_hdus,
)

DETECTOR = EclairsResponse.from_instrument(load_instrument("eclairs"))

TREF = TimeReference(59945.0, "TT", "s")


def test_grouping_reaches_the_target_and_skips_bad_channels() -> None:
    rng = np.random.default_rng(1)
    counts = rng.poisson(3.0, 200).astype(float)
    quality = np.zeros(200, dtype=np.int16)
    quality[:7] = 5
    g = group_channels(counts, quality, min_counts=20, min_channels=4)
    assert np.all(g[:7] == 1)
    starts = np.flatnonzero(g == 1)
    starts = starts[starts >= 7]
    bounds = np.append(starts, 200)
    sums = [counts[a:b].sum() for a, b in itertools.pairwise(bounds)]
    widths = np.diff(bounds)
    assert min(sums) >= 20 and widths.min() >= 4
    # the unfinished tail was merged: every group but possibly none falls short
    assert counts[7:].sum() == pytest.approx(sum(sums))


def test_grouping_also_reaches_the_background_target() -> None:
    """A sparse background (0.3 counts per channel) makes groups wider than the source needs."""
    rng = np.random.default_rng(2)
    counts = rng.poisson(12.0, 300).astype(float)
    bkg = rng.poisson(0.3, 300).astype(float)
    quality = np.zeros(300, dtype=np.int16)
    g = group_channels(counts, quality, min_counts=10, bkg_counts=bkg, min_bkg_counts=2)
    bounds = np.append(np.flatnonzero(g == 1), 300)
    src = [counts[a:b].sum() for a, b in itertools.pairwise(bounds)]
    bk = [bkg[a:b].sum() for a, b in itertools.pairwise(bounds)]
    assert min(src) >= 10 and min(bk) >= 2
    # the source alone would have needed about one channel per group: the background rules
    plain = group_channels(counts, quality, min_counts=10)
    assert np.sum(g == 1) < 0.5 * np.sum(plain == 1)


@pytest.fixture(scope="module")
def events(bright_burst: dict[str, Any]) -> Any:
    return read_burst(bright_burst)


def _write(tmp: Path, spectra: list, respfile: str, name: str = "ecl") -> tuple[Path, Path]:
    """Write the spectra's HDUs as XSPEC would find them: spectrum and background files."""
    src, bak = spectra_hdus(
        spectra,
        telescope="SVOM",
        instrument="ECLAIRS",
        timeref=TREF,
        t0=1.0e8,
        respfile=respfile,
        backfile=f"{name}_bak.pha",
    )
    paths = tmp / f"{name}.pha", tmp / f"{name}_bak.pha"
    for path, hdu in zip(paths, (src, bak), strict=True):
        write_hdulist([fits.PrimaryHDU(), hdu], path)
    return paths


def test_extraction_counts_and_background_scaling(events: Any, tmp_path: Path) -> None:
    ecl = events.get("eclairs")
    off = [(-15.0, -3.0), (15.0, 25.0)]
    bkg = detector_background(ecl, 0, off, (4.0, 150.0))
    s = extract_spectrum(ecl, bkg, (-2.0, 12.0), dead_time_s=0.0, min_counts=10, min_channels=6)
    t = ecl.events.time
    n_in = np.count_nonzero((t >= -2.0) & (t < 12.0))
    assert s.counts.sum() == n_in
    n_off = sum(np.count_nonzero((t >= a) & (t < b)) for a, b in off)
    assert s.bkg_counts.sum() == n_off
    # the burst-free part of the source interval predicts the background: the expected
    # background per second matches the off-source rate (slow modulation only)
    rate_off = n_off / 22.0
    assert s.expected_background / 14.0 == pytest.approx(rate_off, rel=0.02)
    src, bak = _write(tmp_path, [s, s], "none")
    row2 = read_pha(f"{src}{{2}}")
    np.testing.assert_array_equal(row2.counts, s.counts)
    assert row2.backfile == f"{bak.name}{{2}}"
    b2 = read_pha(bak, row=2)
    assert b2.exposure * b2.backscal[0] / row2.exposure == pytest.approx(
        s.counts.sum() and s.bkg_counts.sum() / s.expected_background
    )


def test_empty_interval_names_the_event_file(events: Any) -> None:
    ecl = events.get("eclairs")
    bkg = detector_background(ecl, 0, [(-15.0, -3.0)], (4.0, 150.0))
    with pytest.raises(InputDataError, match=r"eclairs_l1_events\.fits.*empty interval"):
        extract_spectrum(ecl, bkg, (2.0, 2.0), dead_time_s=0.0)
    with pytest.raises(InputDataError, match=r"eclairs_l1_events\.fits.*no good time"):
        extract_spectrum(ecl, bkg, (100.0, 110.0), dead_time_s=0.0)
    empty = replace(ecl, events=ecl.events.select(np.zeros(ecl.events.size, dtype=bool)))
    with pytest.raises(InputDataError, match=r"eclairs_l1_events\.fits.*no counts"):
        extract_spectrum(empty, bkg, (2.0, 3.0), dead_time_s=0.0)


def _ecl_spectrum(events: Any, tmp: Path, validity: tuple[float, float]) -> tuple[Path, Path, Any]:
    ecl = events.get("eclairs")
    bkg = detector_background(ecl, 0, [(-15.0, -3.0), (15.0, 25.0)], (4.0, 150.0))
    s = extract_spectrum(ecl, bkg, (-2.0, 12.0), dead_time_s=0.0, min_counts=10, min_channels=6)
    rsp = write_eclairs_rsp(
        tmp / "ecl.rsp", eclairs_response(0.12, 0.07, detector=DETECTOR), validity=validity
    )
    src, _ = _write(tmp, [s], rsp.name)
    return src, rsp, s


def test_channel_mismatch_between_pha_and_response_names_both_files(
    events: Any, tmp_path: Path
) -> None:
    from svomflow.instruments.grm_response import GRMResponseModel, grm_response
    from svomflow.products.ogip import write_rsp

    src, _, _ = _ecl_spectrum(events, tmp_path, (0.0, 2e8))
    lo, hi, m, eb = grm_response(
        np.array([1.0, 0.0, 0.0]), detector="GRD01", model=GRMResponseModel.from_instrument()
    )
    grm_rsp = write_rsp(
        tmp_path / "grd01.rsp", lo, hi, m, eb, telescope="SVOM", instrument="GRM", detector="GRD01"
    )
    with pytest.raises(
        InputDataError, match=r"ecl\.pha has 1024 channels but the response .*grd01\.rsp has 128"
    ):
        sp.load(str(src), rsp=str(grm_rsp))


def test_response_not_covering_the_interval_names_the_response(events: Any, tmp_path: Path) -> None:
    src, rsp, _ = _ecl_spectrum(events, tmp_path, (0.0, 10.0))
    spec = FitDataset(sp.load(str(src), rsp=str(rsp), name="eclairs"), (4.0, 150.0), "eclairs")
    with pytest.raises(
        InputDataError, match=r"ecl\.rsp: the response is valid over \[0\.0, 10\.0\]"
    ):
        spec.selected()


def test_zero_count_bins_with_chi_square_name_the_spectrum(events: Any, tmp_path: Path) -> None:
    _, rsp, s = _ecl_spectrum(events, tmp_path, (0.0, 2e8))
    counts = s.counts.copy()
    counts[400:420] = 0.0
    bkg = s.bkg_counts.copy()
    bkg[400:420] = 0.0
    s0 = replace(s, counts=counts, bkg_counts=bkg, grouping=np.ones_like(s.grouping))
    src, _ = _write(tmp_path, [s0], rsp.name, name="zero")
    spec = FitDataset(sp.load(str(src), rsp=str(rsp), name="eclairs"), (4.0, 150.0), "eclairs")
    kw = dict(
        label="t",
        interval=(-2.0, 12.0),
        model="pl",
        fallback_model=None,
        cross_norm=True,
        errors=False,
        flux_bands=[],
        flux_samples=0,
        seed=0,
    )
    with pytest.raises(InputDataError, match=r"zero\.pha.*zero counts"):
        fit_datasets([spec], stat="chi2", **kw)
    # a Poisson statistic takes the same spectrum
    assert fit_datasets([spec], stat="wstat", **kw).result.converged


def _pulse_grm(tmp: Path, tau: float) -> tuple[Any, int]:
    """A bright GRM pulse (triangle peaking at 10 s) on a steady background, one dead time.

    Same seeds whatever ``tau``: the events before dead time are identical, so the source
    counts of the ``tau = 0`` run are the truth of the others. Returns the events and the
    number of source events of GRD01 in [5, 20] s (the truth when ``tau = 0``).
    """
    from svomflow.instruments.attitude import Attitude
    from svomflow.instruments.spectra import Spectrum, sample_energies
    from svomflow.simulation.grm import grm_photon_area, simulate_grm, write_grm_l1
    from svomflow.simulation.photons import PhotonList

    att = Attitude(0.0, 0.0, 0.0)
    rng = np.random.default_rng(11)
    n = 250_000
    # a triangular pulse from 5 to 15 s: the dead fraction follows it
    t = np.sort(5.0 + 10.0 * rng.triangular(0.0, 0.5, 1.0, n))
    e = sample_energies(rng, Spectrum("powerlaw", k=1.0, index=-1.5), n, e_min=10.0, e_max=1e4)
    ph = PhotonList(t, e, 0.0, 0.0, grm_photon_area())
    sim = simulate_grm(
        [ph], attitude=att, t_start=-30.0, t_stop=45.0, rng=np.random.default_rng(12),
        calibration_source=False, dead_time_s=tau,
    )  # fmt: skip
    d0 = sim.detectors["GRD01"]
    n_src = int(np.sum((d0.origin == 0) & (d0.time >= 5.0) & (d0.time < 20.0)))
    path = write_grm_l1(tmp / f"grm_{tau:g}.fits", sim, attitude=att, trigger_time=0.0)
    return read_burst_events([str(path)], t0=0.0).get("grm"), n_src


def test_exposure_is_the_live_time_the_source_saw(tmp_path: Path) -> None:
    """With a 30 us dead time the source-weighted exposure recovers the source counts.

    The interval-mean live time would leave the source several per cent short (the live
    fraction dips at the pulse's peak, where most source photons arrive); the source-weighted
    one recovers the true counts to a fraction of that.
    """
    _, n_true = _pulse_grm(tmp_path, 0.0)
    ev, _ = _pulse_grm(tmp_path, 30e-6)
    k = ev.events.detectors.index("GRD01")
    bkg = detector_background(ev, k, [(-30.0, 4.0), (21.0, 45.0)], (15.0, 2000.0))
    s = extract_spectrum(ev, bkg, (5.0, 20.0), dead_time_s=30e-6)
    on_time = 15.0
    # recorded source counts = rate x exposure: the true source counts are that x on-time
    net = s.counts.sum() - s.expected_background
    est = net * on_time / s.exposure
    t, det = ev.events.time, ev.events.detector
    plain = 15.0 - np.sum((det == k) & (t >= 5.0) & (t < 20.0)) * 30e-6
    est_plain = net * on_time / plain
    dead = 1.0 - plain / on_time
    assert dead > 0.05  # a strong effect to correct
    assert abs(est_plain / n_true - 1.0) > 0.02  # the mean live time is visibly wrong
    # Poisson noise of the background subtraction and of the lost events: well under 1 %
    assert abs(est / n_true - 1.0) < 0.006, (est / n_true, est_plain / n_true, dead)
