"""ECLAIRs simulator: output statistics against the input, defects, background, trigger, files."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from svomflow.config import load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.coded_mask import MaskGeometry, diffuse_illumination, mask_pattern, shadow
from svomflow.instruments.eclairs_detector import EclairsResponse
from svomflow.products.eclairs_l1 import read_eclairs_l1, write_eclairs_l1
from svomflow.simulation.eclairs import EclairsBackground, onboard_rate_trigger, simulate_eclairs
from svomflow.simulation.photons import PhotonList

INST = load_instrument("eclairs")
GEOM = MaskGeometry.from_instrument(INST)
PATTERN = mask_pattern(GEOM)
ATT = Attitude(83.6, 22.0, 30.0)
NO_BKG = EclairsBackground(cxb_scale=0.0, instrumental_rate_per_pixel_s=0.0)


def _line(n: int, energy: float, rng: np.random.Generator, tan=(0.0, 0.0), area=1100.0):
    ra, dec = ATT.from_projected(*tan)
    t = np.sort(rng.uniform(0.0, 10.0, n))
    return PhotonList(t, np.full(n, energy), float(ra), float(dec), area_cm2=area, label="line")


def test_on_axis_counts_follow_open_and_closed_pixels() -> None:
    rng = np.random.default_rng(1)
    n = 400_000
    ev = simulate_eclairs(
        [_line(n, 30.0, rng)],
        attitude=ATT,
        t_start=0,
        t_stop=10,
        rng=rng,
        background=NO_BKG,
        run_trigger=False,
    )
    counts = np.zeros(GEOM.shape)
    np.add.at(counts, (ev.y, ev.z), 1)
    sh = shadow(GEOM, PATTERN, 0.0, 0.0)
    open_px, closed_px = sh == 1.0, sh == 0.0
    assert closed_px.sum() > 1000 and open_px.sum() > 1000
    assert counts[closed_px].sum() == 0  # opaque mask, no background
    # 30 keV: efficiency 1, far above threshold; each photon hits a given pixel with
    # probability A_pixel / area
    expected = n * GEOM.pixel_area_cm2 / 1100.0
    mean_open = counts[open_px].mean()
    assert abs(mean_open - expected) < 5 * np.sqrt(expected / open_px.sum())
    # total = open fraction seen on axis x plane area / area
    total_exp = n * GEOM.pixel_area_cm2 * sh.sum() / 1100.0
    assert abs(len(ev) - total_exp) < 5 * np.sqrt(total_exp)
    assert sh.sum() / sh.size == pytest.approx(GEOM.open_fraction, abs=0.03)


def test_efficiency_threshold_and_resolution() -> None:
    rng = np.random.default_rng(2)
    resp = EclairsResponse.from_instrument(INST)
    n = 200_000
    ev = simulate_eclairs(
        [_line(n, 5.0, rng), _line(n, 60.0, rng)],
        attitude=ATT,
        t_start=0,
        t_stop=10,
        rng=rng,
        background=NO_BKG,
        run_trigger=False,
    )
    e = ev.energy_kev.astype(float)
    low, high = e[e < 20], e[e > 40]
    # 5 keV: efficiency x fraction measured above the 4 keV threshold
    acc = resp.efficiency(np.array([5.0]))[0] * norm.sf(
        (4.0 - 5.0) / resp.sigma_kev(np.array([5.0]))[0]
    )
    ratio = low.size / high.size
    sd = ratio * np.sqrt(1 / low.size + 1 / high.size)
    assert abs(ratio - acc / resp.efficiency(np.array([60.0]))[0]) < 5 * sd
    assert low.min() >= 4.0
    # 60 keV line width = the YAML FWHM
    fwhm = 2.3548 * high.std()
    assert fwhm == pytest.approx(
        INST.get("detector_plane.energy_resolution_fwhm_kev_at_60"), rel=0.03
    )
    # PI channels agree with the (float32) energies
    w = INST.get("channels.channel_width_kev")
    assert np.all((e >= ev.pi * w - 1e-4) & (e < (ev.pi + 1) * w + 1e-4))


def test_reproducible_from_seed() -> None:
    def run(seed: int):
        rng = np.random.default_rng(seed)
        return simulate_eclairs(
            [_line(5000, 20.0, rng, tan=(0.2, 0.1))],
            attitude=ATT,
            t_start=0,
            t_stop=10,
            rng=rng,
            run_trigger=False,
        )

    a, b, c = run(7), run(7), run(8)
    for name in ("time", "y", "z", "pi", "origin"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert len(a) != len(c) or not np.array_equal(a.time, c.time)


def test_defects_saa_and_background_rates() -> None:
    rng = np.random.default_rng(3)
    bkg = EclairsBackground(cxb_scale=1.0, instrumental_rate_per_pixel_s=0.06, modulation=None)
    ev = simulate_eclairs(
        [],
        attitude=ATT,
        t_start=0,
        t_stop=100,
        rng=rng,
        background=bkg,
        dead_pixels=[(10, 10), (20, 30)],
        noisy_pixels=[(3, 4, 20.0)],
        saa_intervals=[(40.0, 50.0)],
        run_trigger=False,
    )
    assert ev.exposure_s == pytest.approx(90.0)
    assert np.array_equal(ev.gti, [[0, 40], [50, 100]])
    assert not np.any((ev.time >= 40) & (ev.time < 50))
    dead = ((ev.y == 10) & (ev.z == 10)) | ((ev.y == 20) & (ev.z == 30))
    assert not dead.any()
    noisy = ev.origin == ev.labels.index("noisy")
    assert abs(noisy.sum() - 20.0 * 90) < 5 * np.sqrt(20.0 * 90)
    assert np.all(ev.y[noisy] == 3)
    inst = ev.origin == ev.labels.index("instrumental")
    exp_inst = 0.06 * (6400 - 2) * 90
    assert abs(inst.sum() - exp_inst) < 5 * np.sqrt(exp_inst)
    # CXB: about 2300 counts/s on the plane, spatially following the diffuse exposure map
    cxb = ev.origin == ev.labels.index("cxb")
    rate = cxb.sum() / 90.0
    assert 1500 < rate < 3500
    counts = np.zeros(GEOM.shape)
    np.add.at(counts, (ev.y[cxb], ev.z[cxb]), 1)
    dmap = diffuse_illumination(GEOM, PATTERN)
    centre, corner = np.s_[30:50, 30:50], np.s_[0:20, 0:20]
    ratio = counts[centre].sum() / counts[corner].sum()
    sd = ratio * np.sqrt(1 / counts[centre].sum() + 1 / counts[corner].sum())
    assert abs(ratio - dmap[centre].sum() / dmap[corner].sum()) < 5 * sd


def test_orbital_modulation_shapes_the_background() -> None:
    rng = np.random.default_rng(4)
    bkg = EclairsBackground(
        cxb_scale=0.0,
        instrumental_rate_per_pixel_s=0.05,
        modulation=lambda t: np.where(t < 50, 0.5, 1.5),
    )
    ev = simulate_eclairs(
        [], attitude=ATT, t_start=0, t_stop=100, rng=rng, background=bkg, run_trigger=False
    )
    first, second = np.sum(ev.time < 50), np.sum(ev.time >= 50)
    ratio = second / first
    assert abs(ratio - 3.0) < 5 * ratio * np.sqrt(1 / first + 1 / second)


def test_diffuse_and_occulted_photon_lists() -> None:
    rng = np.random.default_rng(5)
    n = 100_000
    diffuse = PhotonList(
        np.sort(rng.uniform(0, 10, n)), np.full(n, 30.0), None, None, area_cm2=1024.0, label="sky"
    )
    ev = simulate_eclairs(
        [diffuse, _line(n, 30.0, rng)],
        attitude=ATT,
        t_start=0,
        t_stop=10,
        rng=rng,
        background=NO_BKG,
        run_trigger=False,
        occulted=lambda t, ra, dec: t < 5.0,
    )
    sky = ev.origin == ev.labels.index("sky")
    # isotropic radiance on 1024 cm2 behind the mask: the mean diffuse exposure fraction
    frac = diffuse_illumination(GEOM, PATTERN).sum() * GEOM.pixel_area_cm2 / 1024.0
    assert abs(sky.sum() - n * frac) < 5 * np.sqrt(n * frac)
    line = ev.time[ev.origin == ev.labels.index("line")]
    assert line.size > 0 and line.min() >= 5.0


def test_photon_area_too_small_is_an_input_error() -> None:
    rng = np.random.default_rng(6)
    with pytest.raises(InputDataError, match="area_cm2"):
        simulate_eclairs(
            [_line(100, 30.0, rng, area=50.0)],
            attitude=ATT,
            t_start=0,
            t_stop=10,
            rng=rng,
            background=NO_BKG,
        )


def _burst_events(seed: int, n: int):
    rng = np.random.default_rng(seed)
    ra, dec = ATT.from_projected(0.1, -0.2)
    t = np.sort(rng.uniform(300.0, 305.0, n))
    e = 4.0 * (1 - rng.random(n)) ** (-1 / 0.6)
    burst = PhotonList(t, e, float(ra), float(dec), area_cm2=1100.0, label="grb")
    return simulate_eclairs([burst], attitude=ATT, t_start=200, t_stop=360, rng=rng)


def test_rate_trigger_fires_on_the_burst_and_not_on_background() -> None:
    ev = _burst_events(8, 30_000)
    assert ev.trigger is not None
    assert 300.0 < ev.trigger.time <= 305.0 + 1.0
    assert tuple(ev.trigger.band_kev) in [tuple(b) for b in INST.get("bands_kev.trigger")]
    assert ev.trigger.snr >= INST.get("rate_trigger.snr_threshold")
    quiet = _burst_events(9, 0)
    assert quiet.trigger is None
    assert onboard_rate_trigger(quiet, threshold=6.5) is None


def test_l1_file_round_trip(tmp_path) -> None:
    from astropy.io import fits

    ev = _burst_events(10, 20_000)
    path = write_eclairs_l1(ev, tmp_path / "ecl_l1.fits", trigger_id="sb0001", object_name="GRB")
    back = read_eclairs_l1(path)
    for name in ("time", "y", "z", "pi", "origin"):
        assert np.array_equal(getattr(ev, name), getattr(back, name))
    assert np.array_equal(ev.gti, back.gti)
    assert back.trigger is not None and back.trigger.time == pytest.approx(ev.trigger.time)
    assert back.attitude == ev.attitude
    assert np.array_equal(back.dead_pixels, ev.dead_pixels)
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == [
            "PRIMARY",
            "EVENTS",
            "EBOUNDS",
            "GTI",
            "ATTITUDE",
            "BADPIX",
            "ORIGINS",
        ]
        assert list(hdul["ORIGINS"].data["LABEL"]) == ev.labels
        assert back.labels == ev.labels
        h = hdul["EVENTS"].header
        assert h["TRIGID"] == "sb0001" and h["RA_PNT"] == ATT.ra_deg and h["MJDREFI"] == 59945
        assert hdul["EBOUNDS"].header["DETCHANS"] == 1024
        assert hdul["EVENTS"].columns["TIME"].unit == "s"
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"not a fits file")
    with pytest.raises(InputDataError):
        read_eclairs_l1(bad)
