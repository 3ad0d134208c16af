"""SAA time taken out of the ECLAIRs GTIs from the L1 file's ground track and the SAA contour.

A simulated burst observed as the spacecraft enters the SAA (the simulator's orbit and SAA
polygon), with the detectors left on in the SAA (a failed switch-off): only the reader's
cut can remove that time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from svomflow.products.burst_events import read_burst_events
from svomflow.products.orbit_track import (
    OrbitTrack,
    read_orbit_track,
    saa_intervals,
    subtract_intervals,
)
from svomflow.simulation.eclairs_orbit_rates import truth_contour, variant_polygon
from svomflow.simulation.orbit import load_orbit
from svomflow.simulation.orbit import saa_intervals as true_saa
from svomflow.simulation.scenario import load_scenario, run_scenario


def test_subtract_intervals():
    gti = np.array([[0.0, 10.0], [20.0, 30.0]])
    cut = np.array([[5.0, 22.0], [28.0, 40.0]])
    np.testing.assert_array_equal(subtract_intervals(gti, cut), [[0.0, 5.0], [22.0, 28.0]])
    np.testing.assert_array_equal(subtract_intervals(gti, np.zeros((0, 2))), gti)


@pytest.fixture(scope="module")
def crossing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, object]:
    """An ECLAIRs L1 file of a burst 30 s before an SAA entry, the entry time, the contour."""
    orbit = load_orbit()
    entry = float(true_saa(0.0, 86400.0, orbit=orbit, step_s=0.5)[0, 0])
    out = tmp_path_factory.mktemp("saa")
    spec = {
        "name": "saa_edge",
        "instruments": ["eclairs"],
        "epoch_s": entry - 30.0,
        "time": {"start_s": -60.0, "stop_s": 60.0},
        "orbit": {"enabled": True, "face_pointing": False},
        "bright_sources": False,
        "grbs": [
            {
                "name": "grb",
                "family": "long",
                "t90_s": 10.0,
                "peak_flux": 20.0,
                "position": {"offaxis_deg": 3.0},
            }
        ],
        "instrument_options": {"eclairs": {"detectors_off_in_saa": False}},
    }
    path = out / "saa_edge.yaml"
    path.write_text(yaml.safe_dump(spec))
    run_scenario(load_scenario(path), out / "sim", 5, register_calibration=False)
    polygon = variant_polygon("nominal", orbit)
    track = read_orbit_track(out / "sim" / "eclairs_l1_events.fits")
    assert track is not None
    return (
        out / "sim" / "eclairs_l1_events.fits",
        entry,
        truth_contour(polygon, _rates(track), orbit, 1.0),
    )


def _rates(track: OrbitTrack) -> object:
    class _R:  # truth_contour only reads the data span
        time = track.time

        def __len__(self) -> int:
            return int(track.time.size)

    return _R()


def test_orbit_track_is_the_simulators(crossing):
    path, entry, contour = crossing
    track = read_orbit_track(path)
    assert track is not None and track.time[0] <= entry - 90.0 and track.time[-1] >= entry + 30.0
    _, lat = load_orbit().ground_track(track.time)
    np.testing.assert_allclose(track.lat, lat)
    # the track enters the contour where the simulator's orbit enters its SAA polygon
    (iv,) = saa_intervals(track, contour)
    assert iv[0] == pytest.approx(entry, abs=1.5)


def test_reader_takes_the_saa_out_of_the_gtis(crossing, tmp_path):
    path, entry, contour = crossing
    t0 = entry - 30.0
    plain = read_burst_events([path], t0=t0).get("eclairs")
    assert plain is not None
    # the detectors stayed on: the file's GTI runs through the SAA, events too
    np.testing.assert_allclose(plain.events.gti, [[-60.0, 60.0]], atol=1e-3)
    n_in_saa = int(np.sum(plain.events.time >= entry - t0))
    assert n_in_saa > 1000
    cut = read_burst_events([path], t0=t0, saa_contours={"eclairs": contour}).get("eclairs")
    assert cut is not None
    (g,) = cut.events.gti
    assert g[0] == pytest.approx(-60.0, abs=1e-3) and g[1] == pytest.approx(
        entry - t0, abs=1.5
    )  # 30 s after t0
    assert cut.events.time.max() < g[1]
    # exactly the events recorded in the SAA time are dropped (the edge known to 1.5 s)
    assert plain.events.size - cut.events.size == int(np.sum(plain.events.time >= g[1]))
    assert plain.events.size - cut.events.size == pytest.approx(n_in_saa, rel=0.06)
    assert any(f.startswith("SAA (CALDB contour, ORBIT track)") for f in cut.flags)
    # the same file without its ORBIT table: read as it is, with a note
    bare = tmp_path / "bare.fits"
    with fits.open(path) as hdul:
        fits.HDUList([h.copy() for h in hdul if h.name != "ORBIT"]).writeto(bare)
    kept = read_burst_events([bare], t0=t0, saa_contours={"eclairs": contour}).get("eclairs")
    assert kept is not None
    np.testing.assert_allclose(kept.events.gti, [[-60.0, 60.0]], atol=1e-3)
    assert "no ORBIT extension: SAA time not checked against the CALDB contour" in kept.flags
