"""Mask-weighted ECLAIRs spectra: response vs simulator, files, chi2-only fits, recovery, flow step."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from svomflow.config import load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.coded_mask import MaskGeometry, cos_theta, mask_pattern
from svomflow.instruments.eclairs_detector import EclairsResponse
from svomflow.products.eclairs_l1 import read_eclairs_l1
from svomflow.products.ogip import TimeReference, write_hdulist
from svomflow.products.ogip_spectra import read_pha
from svomflow.simulation.xband_mc import read_burst
from svomflow.tasks import spectral as sp
from svomflow.tasks.coded_mask.mask_weighting import event_weights, mask_weights
from svomflow.tasks.coded_mask.response import eclairs_response, write_eclairs_rsp
from svomflow.tasks.xband.config import XbandAnalysisConfig
from svomflow.tasks.xband.datasets import FitDataset
from svomflow.tasks.xband.fitting import fit_datasets
from svomflow.tasks.xband.mask_spectra import (
    extract_weighted_spectrum,
    group_min_snr,
    smooth_variance,
    weighted_spectra_hdu,
)

DETECTOR = EclairsResponse.from_instrument(load_instrument("eclairs"))

INST = load_instrument("eclairs")
GEOM = MaskGeometry.from_instrument(INST)
TREF = TimeReference(59945.0, "TT", "s")
CPL = {"model": "cpl", "alpha": -1.0, "epeak": 100.0}


def test_mask_weighted_response_area_and_headers(tmp_path: Path) -> None:
    usable = np.ones(GEOM.shape, dtype=bool)
    usable[:, :7] = False
    ty, tz = 0.45, 0.3  # partially coded (about 28 deg off axis)
    r = eclairs_response(
        ty, tz, usable_pixels=usable, weighting="mask", ra_dec=(1.0, 2.0), detector=DETECTOR
    )
    mw = mask_weights(GEOM, mask_pattern(GEOM), ty, tz, usable=usable)
    mid = np.sqrt(r.energ_lo * r.energ_hi)
    sel = (mid > 11) & (mid < 39)  # efficiency 1 there
    expected = GEOM.pixel_area_cm2 * float(cos_theta(ty, tz)) * np.sum(mw.weights * mw.illumination)
    np.testing.assert_allclose(r.arf_cm2[sel], expected, rtol=1e-12)
    # normalised to the whole-plane area: the same ARF as the unweighted response
    plain = eclairs_response(ty, tz, usable_pixels=usable, detector=DETECTOR)
    np.testing.assert_allclose(r.arf_cm2, plain.arf_cm2, rtol=1e-10)
    path = write_eclairs_rsp(tmp_path / "mw.rsp", r)
    with fits.open(path) as h:
        hdr = h["SPECRESP MATRIX"].header
        assert hdr["MASKWT"] is True
        assert hdr["WTNORM"] == pytest.approx(mw.norm)
        assert hdr["WTTEMPL"] == 2
        assert 0.3 < hdr["CODFRAC"] < 0.9
    with fits.open(write_eclairs_rsp(tmp_path / "plain.rsp", plain)) as h:
        assert h["SPECRESP MATRIX"].header["MASKWT"] is False
    with pytest.raises(InputDataError, match="outside the field"):
        eclairs_response(3.0, 3.0, weighting="mask", detector=DETECTOR)
    with pytest.raises(InputDataError, match="weighting"):
        eclairs_response(0.0, 0.0, weighting="bat", detector=DETECTOR)  # type: ignore[arg-type]


@pytest.mark.parametrize(("ty", "tz"), [(0.05, -0.03), (0.5, 0.35)])
def test_weighted_counts_match_response_times_spectrum(ty: float, tz: float) -> None:
    """Bright power law + full background: the weighted spectrum is response x spectrum."""
    from svomflow.simulation.eclairs import simulate_eclairs
    from svomflow.simulation.photons import PhotonList

    rng = np.random.default_rng(21)
    att = Attitude(150.0, 20.0, 0.0)
    ra, dec = att.from_projected(ty, tz)
    n, lo, hi, g = 300_000, 3.0, 200.0, -1.6
    u = rng.random(n)
    e = (lo ** (g + 1) + u * (hi ** (g + 1) - lo ** (g + 1))) ** (1 / (g + 1))
    photons = PhotonList(np.sort(rng.uniform(0, 10, n)), e, float(ra), float(dec), 1024.0, "pl")
    ev = simulate_eclairs(
        [photons], attitude=att, t_start=0.0, t_stop=10.0, rng=rng, run_trigger=False
    )
    assert np.sum(ev.origin != 0) > 20_000  # the background is there to cancel
    r = eclairs_response(ty, tz, weighting="mask", detector=DETECTOR)
    mw = mask_weights(GEOM, mask_pattern(GEOM), ty, tz)
    w = event_weights(mw, ev.y, ev.z)
    a, b = r.energ_lo.clip(lo, hi), r.energ_hi.clip(lo, hi)
    integ = (b ** (g + 1) - a ** (g + 1)) / (hi ** (g + 1) - lo ** (g + 1))
    pred = (n / 1024.0) * integ @ r.matrix
    centre = 0.5 * (r.e_min + r.e_max)
    edges = np.arange(5.0, 151.0, 10.0)
    k = np.digitize(centre[ev.pi], edges) - 1
    inside = (k >= 0) & (k < edges.size - 1)
    obs = np.bincount(k[inside], weights=w[inside], minlength=edges.size - 1)
    var = np.bincount(k[inside], weights=w[inside] ** 2, minlength=edges.size - 1)
    exp = np.array([pred[(centre >= p) & (centre < q)].sum() for p, q in itertools.pairwise(edges)])
    chi2 = float(np.sum((obs - exp) ** 2 / var))
    dof = exp.size
    assert chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)
    assert abs(obs.sum() - exp.sum()) < 4 * np.sqrt(var.sum())


def test_smoothing_keeps_a_smooth_variance_and_grouping_reaches_the_target() -> None:
    e = 0.08 + 0.16 * np.arange(1024)
    quality = np.zeros(1024, dtype=np.int16)
    quality[:25] = 5
    smooth = 1e4 * e**-1.5
    np.testing.assert_allclose(
        smooth_variance(smooth, quality, e)[25:], smooth[25:], rtol=0.02
    )  # a power law is kept (curvature term well below 2 %)
    rng = np.random.default_rng(1)
    var = rng.poisson(smooth).astype(float)
    sv = smooth_variance(var, quality, e)
    # averaging many channels: far closer to the expectation than a single channel
    hi = e > 80
    assert np.std(sv[hi] / smooth[hi] - 1) < 0.3 * np.std(var[hi] / smooth[hi] - 1)
    counts = rng.normal(5.0, np.sqrt(sv))
    grouping = group_min_snr(counts, sv, quality, 4.0, 6)
    starts = [i for i in range(1024) if quality[i] == 0 and grouping[i] == 1]
    bounds = [*starts, 1024]
    for a, b in itertools.pairwise(bounds):
        assert b - a >= 6
    # every group but the last reaches the target
    for a, b in itertools.pairwise(bounds[:-1]):
        assert counts[a:b].sum() / np.sqrt(sv[a:b].sum()) >= 4.0


def _pull(value: float, lo: float | None, hi: float | None, truth: float) -> float:
    err = hi if value < truth else -(lo or 0.0)
    return (value - truth) / err if err and err > 0 else np.inf


def _fluence_in(b: dict[str, Any], interval: tuple[float, float], band: str) -> float:
    """Injected fluence inside an interval: total times the share of the burst's events in it."""
    l1 = read_eclairs_l1(b["files"][0])
    grb = np.array([lb not in ("cxb", "instrumental", "noisy") for lb in l1.labels])[l1.origin]
    t = l1.time[grb] - b["t0"]
    frac = float(np.mean((t >= interval[0]) & (t < interval[1])))
    return b["truth"]["bands"][band]["energy_fluence_erg"] * frac


def _weighted_dataset(
    b: dict[str, Any], work: Path, interval: tuple[float, float]
) -> tuple[Path, Path]:
    """Mask-weighted PHA and response of a simulated burst at its true position."""
    ev = read_burst(b)
    e = ev.instruments["eclairs"]
    assert e.attitude is not None
    ty, tz = e.attitude.to_projected(b["ra"], b["dec"])
    usable = ~ev.bad_pixels["eclairs"].dead
    mw = mask_weights(GEOM, mask_pattern(GEOM), float(ty), float(tz), usable=usable)
    s = extract_weighted_spectrum(e, mw, interval, min_snr=3.0, min_channels=6)
    r = eclairs_response(
        float(ty), float(tz), usable_pixels=usable, weighting="mask", detector=DETECTOR
    )
    work.mkdir(parents=True, exist_ok=True)
    rsp = write_eclairs_rsp(work / "ecl.rsp", r, validity=(b["t0"] - 1e3, b["t0"] + 1e3))
    hdu = weighted_spectra_hdu(
        [s], telescope="SVOM", instrument="ECLAIRS", timeref=TREF, t0=b["t0"], respfile=rsp.name
    )
    pha = write_hdulist([fits.PrimaryHDU(), hdu], work / "ecl.pha")
    return pha, rsp


def test_weighted_pha_round_trip_and_poisson_statistics_refused(
    burst_factory: Any, tmp_path: Path
) -> None:
    b = burst_factory(tmp_path / "sim", 41, spectrum=CPL, span=(-8.0, 16.0))
    pha, rsp = _weighted_dataset(b, tmp_path / "w", (-3.0, 12.0))
    spec = read_pha(pha)
    assert not spec.poisserr and spec.stat_err is not None and spec.backfile is None
    assert np.any(spec.counts < 0) and np.any(spec.counts != np.round(spec.counts))
    with fits.open(pha) as h:
        hdr = h["SPECTRUM"].header
        assert hdr["HDUCLAS2"] == "NET" and hdr["MASKWT"] is True and hdr["POISSERR"] is False
        raw = np.asarray(h["SPECTRUM"].data["RAW_VAR"], float)
    # STAT_ERR is the smoothed sum(w^2): same total within a few per cent
    good = spec.quality == 0
    assert np.sum(spec.stat_err[good] ** 2) == pytest.approx(raw[good].sum(), rel=0.03)
    ds = sp.load(pha, rsp=rsp)
    assert ds.background is None
    ds.select_energy([(4.0, 150.0)])
    for stat in ("cstat", "wstat", "pgstat"):
        with pytest.raises(InputDataError, match="fit it with chi2"):
            sp.fit(ds, "cpl", stat)
    res = sp.fit(ds, "cpl", "chi2")
    assert res.statistic == "chi2" and res.converged
    assert res.stat < res.dof + 4 * np.sqrt(2 * res.dof)


@pytest.mark.parametrize("off", [6.0, 30.0])
def test_weighted_fit_recovers_cpl_and_fluence(
    burst_factory: Any, tmp_path: Path, off: float
) -> None:
    """On axis and partially coded: CPL parameters and fluence within their errors."""
    b = burst_factory(tmp_path / "sim", 50 + int(off), spectrum=CPL, offaxis_deg=off)
    interval = (-3.0, 18.0)
    pha, rsp = _weighted_dataset(b, tmp_path / "w", interval)
    ds = sp.load(str(pha), rsp=str(rsp), name="eclairs")
    f = fit_datasets(
        [FitDataset(ds, (4.0, 150.0), "eclairs", stat="chi2")],
        label="main",
        interval=interval,
        model="cpl",
        fallback_model=None,
        stat="wstat",
        cross_norm=True,
        errors=True,
        flux_bands=[(4.0, 150.0)],
        flux_samples=400,
        seed=0,
    )
    r = f.result
    assert r.statistic == "chi2"
    pulls = {
        "alpha": _pull(
            r.parameters["index"].value,
            r.parameters["index"].error_low,
            r.parameters["index"].error_high,
            CPL["alpha"],
        ),
        "epeak": _pull(
            r.parameters["epeak"].value,
            r.parameters["epeak"].error_low,
            r.parameters["epeak"].error_high,
            CPL["epeak"],
        ),
    }
    fx = f.fluxes["fluence_4-150"]
    truth = _fluence_in(b, interval, "4-150")
    pulls["fluence"] = _pull(fx.value, fx.error_low, fx.error_high, truth)
    # |pull| < 3.3 fails with probability 0.1 % per quantity for a correct analysis
    assert all(abs(v) < 3.3 for v in pulls.values()), pulls


def test_joint_fit_chi2_for_eclairs_and_wstat_for_grm(burst_factory: Any, tmp_path: Path) -> None:
    """Per-dataset statistics: mask-weighted ECLAIRs (chi2) with GRM W-stat, Band recovered."""
    from svomflow.tasks.xband.spectra import detector_background, extract_spectrum, spectra_hdus

    b = burst_factory(tmp_path / "sim", 61, span=(-10.0, 20.0))
    interval = (-2.0, 15.0)
    pha, rsp = _weighted_dataset(b, tmp_path / "w", interval)
    ecl = sp.load(str(pha), rsp=str(rsp), name="eclairs")
    specs = [FitDataset(ecl, (4.0, 150.0), "eclairs", "chi2")]
    ev = read_burst(b)
    g = ev.instruments["grm"]
    dead_time = b["calibration"].get("grm", "DEADTIME")
    from svomflow.instruments.grm_response import GRMResponseModel, grm_response
    from svomflow.products.ogip import write_rsp

    assert g.attitude is not None
    for k, det in enumerate(g.events.detectors):
        lo, hi, m, eb = grm_response(
            (b["ra"], b["dec"]),
            detector=det,
            attitude=g.attitude,
            model=GRMResponseModel.from_instrument(g.definition),
        )
        r = write_rsp(
            tmp_path / f"{det}.rsp",
            lo,
            hi,
            m,
            eb,
            detector=det,
            direction_radec=(b["ra"], b["dec"]),
            telescope=g.definition.telescope,
            instrument=g.definition.instrument,
        )
        bkg = detector_background(g, k, [(-10.0, -3.0), (16.0, 20.0)], (15.0, 2000.0))
        s = extract_spectrum(g, bkg, interval, dead_time_s=dead_time.of(det), min_counts=10)
        src_hdu, bak_hdu = spectra_hdus(
            [s],
            telescope="SVOM",
            instrument=g.definition.instrument,
            timeref=TREF,
            t0=b["t0"],
            respfile=r.name,
            backfile=f"{det}_bak.pha",
        )
        write_hdulist([fits.PrimaryHDU(), bak_hdu], tmp_path / f"{det}_bak.pha")
        src = write_hdulist([fits.PrimaryHDU(), src_hdu], tmp_path / f"{det}.pha")
        ds = sp.load(str(src), rsp=str(r), name=f"grm_{det}")
        specs.append(FitDataset(ds, (15.0, 2000.0), "grm"))
    f = fit_datasets(
        specs,
        label="main",
        interval=interval,
        model="band",
        fallback_model=None,
        stat="wstat",
        cross_norm=True,
        errors=True,
        flux_bands=[(10.0, 1000.0)],
        flux_samples=0,
        seed=0,
    )
    r = f.result
    assert r.statistic == "chi2+wstat"
    assert len(r.per_dataset_stat) == 1 + len(g.events.detectors)
    for name in ("alpha", "epeak"):
        p = r.parameters[name]
        assert abs(_pull(p.value, p.error_low, p.error_high, b["spectrum"][name])) < 3.3, (name, p)
    norm = r.parameters[f"norm_grm_{g.events.detectors[0]}"]
    assert abs(norm.value - 1.0) < 3.3 * max(norm.error_high, -norm.error_low)
    # a statistic per dataset must match the datasets
    ds = sp.load(pha, rsp=rsp)
    with pytest.raises(InputDataError, match="statistics given"):
        sp.fit([ds], "cpl", ["chi2", "wstat"])


def test_extraction_errors_are_clear(bright_burst: dict[str, Any]) -> None:
    ev = read_burst(bright_burst)
    e = ev.instruments["eclairs"]
    mw = mask_weights(GEOM, mask_pattern(GEOM), 0.1, 0.05)
    with pytest.raises(InputDataError, match="no good time"):
        extract_weighted_spectrum(e, mw, (1e6, 1e6 + 1))
    with pytest.raises(InputDataError, match="empty interval"):
        extract_weighted_spectrum(e, mw, (2.0, 1.0))
    g = ev.instruments["grm"]
    with pytest.raises(InputDataError, match="no pixel coordinates"):
        extract_weighted_spectrum(g, mw, (0.0, 5.0))


def test_flow_steps_with_mask_weighted_eclairs(bright_burst: dict[str, Any]) -> None:
    """spectral.eclairs_method = mask_weighted: PHA_ECL is mask-weighted, fitted with chi2."""
    from svomflow.tasks.xband.extraction import spectra
    from svomflow.tasks.xband.localise import localise
    from svomflow.tasks.xband.pipeline import fit_plans
    from svomflow.tasks.xband.responses import responses
    from svomflow.tasks.xband.spectral_fits import fit
    from svomflow.tasks.xband.t90 import timing

    cfg = XbandAnalysisConfig.model_validate(
        {
            "spectral": {"eclairs_method": "mask_weighted", "errors": False, "flux_samples": 50},
            "intervals": {"max_resolved": 2},
        }
    )
    cal = bright_burst["calibration"]
    ev = read_burst(bright_burst)
    ins, t0 = ev.instruments, ev.t0
    ci = timing(ins, t0, config=cfg.intervals).intervals
    pos = localise(ins, ci, cfg.known_sources, t0, config=cfg.localise, calibration=cal)
    whole_plane = cfg.spectral.model_copy(update={"eclairs_method": "time_background"})
    plain = responses(ins, pos, config=whole_plane, calibration=cal)
    args = (ins, ci.fitted(), ci.off_source, pos)
    with pytest.raises(InputDataError, match="mask-weighted response"):
        spectra(*args, plain, cfg.known_sources, t0, config=cfg.spectral, calibration=cal)
    rsp = responses(ins, pos, config=cfg.spectral, calibration=cal)
    coded = rsp.instruments["eclairs"].coded_mask
    assert coded is not None and coded.weighting == "mask"
    out = spectra(*args, rsp, cfg.known_sources, t0, config=cfg.spectral, calibration=cal)
    kinds = {(p.type_code, p.instrument) for p in out.products}
    assert ("PHA", "ECL") in kinds and ("BAK", "ECL") not in kinds
    fits_ = {
        p.code: fit(
            p.code, p.instruments, out, p.fluence_bands, p.flux_bands, p.flux_band, t0,
            cfg.seed, config=cfg.spectral,
        )
        for p in fit_plans(list(out.detectors), cfg)
    }  # fmt: skip
    assert fits_["ECL"].main.result.statistic == "chi2"
    assert fits_["ECLGRM"].main.result.statistic == "chi2+wstat"
    assert {f.factors.instrument for f in fits_.values() if f.factors} >= {"eclairs", "grm"}
