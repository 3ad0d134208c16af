"""Sky images: null statistics, peak at the source, known-source removal, noisy pixels."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.config import load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.coded_mask import MaskGeometry
from svomflow.simulation.eclairs import simulate_eclairs
from svomflow.simulation.photons import PhotonList
from svomflow.tasks.coded_mask._kernels import correlate_direct
from svomflow.tasks.coded_mask.imaging import (
    MaskModel,
    find_noisy_pixels,
    make_shadowgram,
    sky_image,
)

INST = load_instrument("eclairs")
GEOM = MaskGeometry.from_instrument(INST)
MODEL = MaskModel.from_geometry(GEOM)
ATT = Attitude(200.0, -10.0, 75.0)


def _source(rng, n, tan, t0=100.0, dur=10.0, label="grb"):
    ra, dec = ATT.from_projected(*tan)
    t = np.sort(rng.uniform(t0, t0 + dur, n))
    e = 4.0 * (1 - rng.random(n)) ** (-1 / 0.7)
    return PhotonList(t, e, float(ra), float(dec), area_cm2=1100.0, label=label)


def _shadowgram(ev, interval, **kw):
    return make_shadowgram(
        ev.time,
        ev.y,
        ev.z,
        ev.energy_kev,
        shape=GEOM.shape,
        band_kev=(4.0, 50.0),
        interval=interval,
        gti=ev.gti,
        **kw,
    )


def test_null_image_is_unit_normal_and_fft_matches_direct() -> None:
    rng = np.random.default_rng(21)
    ev = simulate_eclairs([], attitude=ATT, t_start=0, t_stop=20, rng=rng, run_trigger=False)
    img = sky_image(_shadowgram(ev, (0.0, 20.0)), MODEL)
    s = img.snr[img.valid]
    # ~4500 independent resolution elements: the mean and scatter are known to ~2 %
    assert abs(s.mean()) < 0.1
    assert s.std() == pytest.approx(1.0, abs=0.08)
    # the FFT correlation equals the direct correlation used as reference
    sg = _shadowgram(ev, (0.0, 20.0))
    direct = correlate_direct(sg.counts, MODEL.grid)
    assert np.allclose(MODEL.correlator(sg.counts), direct, rtol=1e-9, atol=1e-6)


def test_image_peak_at_source_with_counts() -> None:
    rng = np.random.default_rng(22)
    shift = (17, -23)  # integer shadow shift: the image grid contains the true position
    tan = (float(GEOM.shift_to_tan(shift[0])), float(GEOM.shift_to_tan(shift[1])))
    ev = simulate_eclairs(
        [_source(rng, 20000, tan)], attitude=ATT, t_start=0, t_stop=110, rng=rng, run_trigger=False
    )
    sg = _shadowgram(ev, (100.0, 110.0), background_interval=(0.0, 95.0))
    img = sky_image(sg, MODEL)
    i, j, snr = img.peak()
    assert (img.shift_y[i], img.shift_z[j]) == shift
    truth = np.sum((ev.origin == ev.labels.index("grb")) & (ev.energy_kev < 50))
    assert abs(img.counts[i, j] - truth) < 4 * np.sqrt(img.variance[i, j])
    assert snr > 10


def test_known_source_is_removed_before_the_search() -> None:
    rng = np.random.default_rng(23)
    known = (-0.25, 0.3)
    grb = (0.2, 0.1)
    ev = simulate_eclairs(
        [
            _source(rng, 60000, known, t0=0.0, dur=20.0, label="crab"),
            _source(rng, 12000, grb, t0=0.0, dur=20.0),
        ],
        attitude=ATT,
        t_start=0,
        t_stop=20,
        rng=rng,
        run_trigger=False,
    )
    sg = _shadowgram(ev, (0.0, 20.0))
    plain = sky_image(sg, MODEL)
    i, j, _ = plain.peak()
    assert abs(plain.tan_y[i] - known[0]) < 0.02 and abs(plain.tan_z[j] - known[1]) < 0.02
    cleaned = sky_image(sg, MODEL, known_sources=[known])
    i, j, snr = cleaned.peak()
    assert abs(cleaned.tan_y[i] - grb[0]) < 0.02 and abs(cleaned.tan_z[j] - grb[1]) < 0.02
    assert snr > 6.5


def test_noisy_and_dead_pixels_are_found() -> None:
    rng = np.random.default_rng(24)
    noisy_in = [(5, 5, 0.3), (60, 12, 0.5), (33, 70, 1.0)]
    ev = simulate_eclairs(
        [],
        attitude=ATT,
        t_start=0,
        t_stop=200,
        rng=rng,
        run_trigger=False,
        noisy_pixels=noisy_in,
        dead_pixels=[(40, 40)],
    )
    counts = _shadowgram(ev, (0.0, 200.0)).counts
    noisy, dead = find_noisy_pixels(counts, templates=[np.ones(GEOM.shape), MODEL.cxb_map])
    assert {tuple(p) for p in np.argwhere(noisy)} == {(a, b) for a, b, _ in noisy_in}
    assert {tuple(p) for p in np.argwhere(dead)} == {(40, 40)}


def test_bad_shadowgram_inputs() -> None:
    with pytest.raises(InputDataError):
        make_shadowgram(
            np.zeros(3),
            np.zeros(2, int),
            np.zeros(3, int),
            np.zeros(3),
            shape=(80, 80),
            band_kev=(4, 50),
            interval=(0, 1),
        )
    with pytest.raises(InputDataError):
        make_shadowgram(
            np.zeros(3),
            np.zeros(3, int),
            np.zeros(3, int),
            np.zeros(3),
            shape=(80, 80),
            band_kev=(4, 50),
            interval=(1, 1),
        )
