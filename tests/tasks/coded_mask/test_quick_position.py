"""OTLOC ECLAIRs step end to end: simulated L1 file with defects, a known source, BADPIX."""

from __future__ import annotations

import numpy as np
from svomflow.instruments.attitude import Attitude, angular_separation_deg
from svomflow.instruments.pixels import PixelMap
from svomflow.products.eclairs_l1 import read_eclairs_l1, write_eclairs_l1
from svomflow.simulation.eclairs import simulate_eclairs
from svomflow.simulation.photons import PhotonList
from svomflow.tasks.coded_mask.quick_position import quick_position

ATT = Attitude(150.0, 20.0, 40.0)


def _plist(rng, n, tan, t0, t1, label):
    ra, dec = ATT.from_projected(*tan)
    t = np.sort(rng.uniform(t0, t1, n))
    e = 4.0 * (1 - rng.random(n)) ** (-1 / 0.6)
    return PhotonList(t, e, float(ra), float(dec), area_cm2=1100.0, label=label)


def test_quick_position_from_an_l1_file(tmp_path) -> None:
    rng = np.random.default_rng(51)
    known_tan = (0.35, -0.3)
    grb_tan = (-0.12, 0.25)
    sources = [
        _plist(rng, 150_000, known_tan, 0.0, 160.0, "known"),
        _plist(rng, 25_000, grb_tan, 120.0, 130.0, "grb"),
    ]
    ev = simulate_eclairs(
        sources,
        attitude=ATT,
        t_start=0.0,
        t_stop=160.0,
        rng=rng,
        noisy_pixels=[(7, 70, 3.0), (50, 2, 5.0)],
        dead_pixels=[(12, 13)],
    )
    path = write_eclairs_l1(ev, tmp_path / "l1.fits", trigger_id=1)
    back = read_eclairs_l1(path)
    assert back.trigger is not None and 120.0 <= back.trigger.time <= 131.0
    t_trig = back.trigger.time
    known_radec = [tuple(float(v) for v in ATT.from_projected(*known_tan))]
    qp = quick_position(
        back.time,
        back.y,
        back.z,
        back.energy_kev,
        attitude=back.attitude,
        interval=(120.0, 130.0),
        background_interval=(0.0, min(t_trig, 119.0)),
        gti=back.gti,
        bad_pixels=PixelMap(dead=back.dead_pixels, noisy=np.zeros_like(back.dead_pixels)),
        known_sources_radec=known_radec,
    )
    assert {tuple(p) for p in np.argwhere(qp.noisy_pixels)} == {(7, 70), (50, 2)}
    assert qp.dead_pixels[12, 13]
    ra, dec = ATT.from_projected(*grb_tan)
    err = float(angular_separation_deg(qp.position.ra_deg, qp.position.dec_deg, ra, dec)) * 60
    assert qp.position.snr > 10
    assert err < qp.position.r90_arcmin
    summary = qp.to_dict()
    assert summary["n_noisy_pixels"] == 2 and summary["band_kev"] == [4.0, 50.0]


def test_known_noisy_pixels_of_the_caldb_are_excluded_with_the_found_ones() -> None:
    """A pixel the CALDB calls noisy is excluded even when it is quiet in the data."""
    rng = np.random.default_rng(52)
    grb_tan = (0.1, -0.2)
    ev = simulate_eclairs(
        [_plist(rng, 20_000, grb_tan, 60.0, 70.0, "grb")],
        attitude=ATT,
        t_start=0.0,
        t_stop=80.0,
        rng=rng,
        noisy_pixels=[(7, 70, 3.0)],
        run_trigger=False,
    )
    known = PixelMap(dead=np.zeros((80, 80), bool), noisy=np.zeros((80, 80), bool))
    known.noisy[20, 21] = True

    def locate(bad: PixelMap | None):  # type: ignore[no-untyped-def]
        return quick_position(
            ev.time, ev.y, ev.z, ev.energy_kev, attitude=ATT, interval=(60.0, 70.0),
            background_interval=(0.0, 59.0), gti=ev.gti, bad_pixels=bad,
        )  # fmt: skip

    found, both = locate(None), locate(known)
    assert found.noisy_pixels[7, 70] and not found.noisy_pixels[20, 21]
    assert np.array_equal(both.noisy_pixels, found.noisy_pixels | known.noisy)
    # one pixel less of 6400 barely moves the position
    sep = angular_separation_deg(
        found.position.ra_deg, found.position.dec_deg, both.position.ra_deg, both.position.dec_deg
    )
    assert float(sep) * 60 < found.position.r90_arcmin
