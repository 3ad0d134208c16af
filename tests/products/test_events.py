"""Event-list reader: format detection, merging, bad input, and the real GBM TTE files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.products.events import (
    GBM_DEADTIME_S,
    GBM_OVERFLOW_DEADTIME_S,
    detect_format,
    read_events,
)
from svomflow.products.ogip import (
    LightCurve,
    TimeReference,
    ebounds_hdu,
    lightcurve_hdu,
    primary_hdu,
    write_hdulist,
)

TRIG = 5.0e8


def _ebounds(n: int = 8, instrument: str = "GBM") -> fits.BinTableHDU:
    edges = np.geomspace(10.0, 1000.0, n + 1)
    return ebounds_hdu(edges[:-1], edges[1:], telescope="GLAST", instrument=instrument)


def _gbm_file(
    path: Path,
    times_rel: np.ndarray,
    pha: np.ndarray,
    *,
    detnam: str = "NAI_03",
    trigtime: float = TRIG,
    with_ebounds: bool = True,
) -> Path:
    prim = fits.PrimaryHDU()
    prim.header["INSTRUME"] = "GBM"
    prim.header["TRIGTIME"] = trigtime
    prim.header["DETNAM"] = detnam
    ev = fits.BinTableHDU.from_columns(
        [
            fits.Column("TIME", "D", unit="s", array=trigtime + times_rel),
            fits.Column("PHA", "I", array=pha),
        ],
        name="EVENTS",
    )
    for k, v in (
        ("INSTRUME", "GBM"),
        ("DETNAM", detnam),
        ("TRIGTIME", trigtime),
        ("MJDREFI", 51910),
        ("MJDREFF", 7.428703703703703e-4),
        ("TIMESYS", "TT"),
    ):
        ev.header[k] = v
    gti = fits.BinTableHDU.from_columns(
        [
            fits.Column(
                "START", "D", array=[trigtime + (times_rel.min() if times_rel.size else 0)]
            ),
            fits.Column("STOP", "D", array=[trigtime + (times_rel.max() if times_rel.size else 1)]),
        ],
        name="GTI",
    )
    hdus = [prim] + ([_ebounds()] if with_ebounds else []) + [ev, gti]
    fits.HDUList(hdus).writeto(path)
    return path


def test_gbm_tte_multi_detector_merge(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    t1 = np.sort(rng.uniform(-10, 50, 500))
    t2 = np.sort(rng.uniform(-10, 50, 300))
    p1 = _gbm_file(tmp_path / "glg_tte_n3_x.fit", t1, rng.integers(0, 8, t1.size))
    pha2 = rng.integers(0, 8, t2.size)
    pha2[:5] = 7  # overflow channel
    p2 = _gbm_file(tmp_path / "glg_tte_b0_x.fit", t2, pha2, detnam="BGO_00")
    assert detect_format(p1) == "gbm_tte"
    ev = read_events([p1, p2])
    assert ev.size == 800
    assert ev.detectors == ("NAI_03", "BGO_00")
    assert np.all(np.diff(ev.time) >= 0)
    assert ev.t0 == TRIG
    np.testing.assert_allclose(np.sort(ev.time[ev.detector == 1]), t2, atol=1e-6)
    # channel-midpoint energies
    edges = np.geomspace(10.0, 1000.0, 9)
    mids = 0.5 * (edges[:-1] + edges[1:])
    assert set(np.round(ev.energy, 3)) <= set(np.round(mids, 3))
    # dead time: 2.6 us per event, 10 us in the overflow channel
    np.testing.assert_array_equal(
        ev.deadtime, np.where(ev.channel == 7, GBM_OVERFLOW_DEADTIME_S, GBM_DEADTIME_S)
    )
    assert np.count_nonzero(ev.deadtime == GBM_OVERFLOW_DEADTIME_S) >= 5
    # GTIs are intersected; live time = GTI time minus dead time averaged over detectors
    g = ev.gti
    assert g[0, 0] == pytest.approx(max(t1.min(), t2.min()), abs=1e-6)
    live = ev.livetime(np.array([g[0, 0], g[0, 1]]))
    inside = (ev.time >= g[0, 0]) & (ev.time <= g[0, 1])  # last bin closed, as np.histogram
    assert live[0] == pytest.approx((g[0, 1] - g[0, 0]) - ev.deadtime[inside].sum() / 2, rel=1e-12)


def test_unsorted_and_duplicates_are_flagged(tmp_path: Path) -> None:
    t = np.array([0.0, 2.0, 1.0, 1.0, 3.0, 4.0])
    p = _gbm_file(tmp_path / "u.fit", t, np.array([1, 2, 3, 4, 5, 6]))
    ev = read_events(p)
    assert np.all(np.diff(ev.time) >= 0)
    assert ev.n_duplicates == 1
    assert any("sorted on read" in f for f in ev.flags)
    assert any("duplicate" in f for f in ev.flags)
    # stable sort keeps the file order of the tied events (channels 3 then 4)
    assert list(ev.channel[1:3]) == [3, 4]


def test_missing_ebounds_is_an_error(tmp_path: Path) -> None:
    p = _gbm_file(tmp_path / "noeb.fit", np.arange(10.0), np.ones(10, int), with_ebounds=False)
    with pytest.raises(InputDataError, match="no EBOUNDS"):
        read_events(p)


def test_empty_and_truncated_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.fit"
    empty.write_bytes(b"")
    with pytest.raises(InputDataError, match="empty"):
        read_events(empty)
    good = _gbm_file(tmp_path / "good.fit", np.linspace(0, 10, 5000), np.ones(5000, int))
    raw = good.read_bytes()
    cut = tmp_path / "cut.fit"
    cut.write_bytes(raw[: len(raw) - 30000])
    with pytest.raises(InputDataError):
        read_events(cut)
    gz = tmp_path / "cut.fit.gz"
    gz.write_bytes(gzip.compress(raw)[:-5000])
    with pytest.raises(InputDataError):
        read_events(gz)
    with pytest.raises(InputDataError, match="no such file"):
        read_events(tmp_path / "absent.fit")
    noev = _gbm_file(tmp_path / "noev.fit", np.zeros(0), np.zeros(0, int))
    with pytest.raises(InputDataError):
        read_events(noev)


def test_t0_outside_data_and_mismatched_trigtimes(tmp_path: Path) -> None:
    p = _gbm_file(tmp_path / "a.fit", np.arange(10.0), np.ones(10, int))
    with pytest.raises(InputDataError, match="outside the data"):
        read_events(p, t0=TRIG + 1000.0)
    ev = read_events(p, t0=TRIG + 5.0)
    assert ev.time[0] == pytest.approx(-5.0)
    q = _gbm_file(
        tmp_path / "b.fit", np.arange(10.0), np.ones(10, int), trigtime=TRIG + 1.0, detnam="NAI_04"
    )
    with pytest.raises(InputDataError, match="TRIGTIME differs"):
        read_events([p, q])


def test_generic_ogip_events_pi_and_energy(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    t = np.sort(rng.uniform(100, 200, 50))
    prim = primary_hdu(telescope="SVOM", instrument="GRM")
    ev = fits.BinTableHDU.from_columns(
        [fits.Column("TIME", "D", array=t), fits.Column("PI", "J", array=np.arange(50) % 8)],
        name="EVENTS",
    )
    ev.header["TRIGTIME"] = 150.0
    p = tmp_path / "svom_l1.fits"
    write_hdulist([prim, ev, _ebounds(instrument="GRM")], p)
    assert detect_format(p) == "svomflow_l1"
    out = read_events(p)
    assert out.t0 == 150.0 and out.size == 50
    assert out.gti[0, 0] == pytest.approx(t.min() - 150.0)

    ev2 = fits.BinTableHDU.from_columns(
        [
            fits.Column("TIME", "D", array=t),
            fits.Column("ENERGY", "E", unit="eV", array=np.full(50, 5000.0)),
        ],
        name="EVENTS",
    )
    p2 = tmp_path / "energy.fits"
    fits.HDUList([fits.PrimaryHDU(), ev2]).writeto(p2)
    assert detect_format(p2) == "ogip_events"
    out2 = read_events(p2)
    np.testing.assert_allclose(out2.energy, 5.0)  # eV converted to keV
    assert out2.t0 == pytest.approx(t.min())  # no TRIGTIME: start of the data


def test_lightcurve_is_detected_and_refused(tmp_path: Path) -> None:
    lc = LightCurve(
        time=np.arange(5.0),
        timedel=np.ones(5),
        rate=np.ones(5),
        error=np.ones(5),
        fracexp=np.ones(5),
        gti=np.array([[0.0, 5.0]]),
        timeref=TimeReference(mjdref=51910.0),
    )
    p = tmp_path / "lc.fits"
    write_hdulist(
        [
            primary_hdu(telescope="SVOM", instrument="GRM"),
            lightcurve_hdu(lc, telescope="SVOM", instrument="GRM"),
        ],
        p,
    )
    assert detect_format(p) == "ogip_lightcurve"
    with pytest.raises(InputDataError, match="read_lightcurve"):
        read_events(p)


def test_real_gbm_tte_n3(shared_data: Path) -> None:
    path = shared_data / "gbm" / "bn080916009" / "glg_tte_n3_bn080916009_v01.fit.gz"
    ev = read_events(path)
    assert ev.size == 451128
    assert ev.t0 == pytest.approx(243216766.613542)
    assert ev.time[0] == pytest.approx(-25.9, abs=0.1)
    assert ev.time[-1] == pytest.approx(300.7, abs=0.1)
    assert ev.formats == ("gbm_tte",)
    assert ev.mjdref == pytest.approx(51910.000742870, abs=1e-8)
    lo, hi = ev.band_edges(50.0, 300.0)["NAI_03"]
    assert 45 < lo < 55 and 280 < hi < 320


def test_svomflow_grm_l1_file_three_detectors(tmp_path: Path) -> None:
    """The simulation's GRM writer (one EVENTS table per detector) reads as three detectors."""
    grm = pytest.importorskip("svomflow.simulation.grm")
    rng = np.random.default_rng(0)
    dets = {}
    for k, name in enumerate(("GRD1", "GRD2", "GRD3")):
        t = np.sort(rng.uniform(1000.0, 1100.0, 200 + 50 * k))
        dets[name] = grm.GRMDetectorEvents(
            name=name,
            time=t,
            pi=rng.integers(0, 100, t.size).astype(np.int16),
            origin=np.zeros(t.size, np.int8),
            ontime=100.0,
            n_deadtime_lost=0,
            dead_time_s=4e-6,
            axis=np.array([1.0, 0.0, 0.0]),
        )
    sim = grm.GRMSimulation(
        detectors=dets,
        gti=np.array([[1000.0, 1100.0]]),
        channel_edges_kev=np.geomspace(15.0, 5000.0, 101),
        t_start=1000.0,
        t_stop=1100.0,
    )
    path = grm.write_grm_l1(tmp_path / "grm_l1.fits", sim, trigger_time=1040.0)
    assert detect_format(path) == "svomflow_l1"
    ev = read_events(path)
    assert ev.detectors == ("GRD1", "GRD2", "GRD3")
    assert ev.size == 200 + 250 + 300
    assert ev.t0 == 1040.0
    np.testing.assert_array_equal(np.bincount(ev.detector), [200, 250, 300])
    np.testing.assert_allclose(ev.deadtime, 4e-6)  # DEADTAU, not the total DEADTIME
    edges = np.geomspace(15.0, 5000.0, 101)
    assert ev.energy.min() >= edges[0] and ev.energy.max() <= edges[-1]
