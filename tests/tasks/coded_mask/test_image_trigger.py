"""Image trigger: a slow, faint source invisible to the rate trigger shows up in long images."""

from __future__ import annotations

import numpy as np
from svomflow.config import load_instrument
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.coded_mask import MaskGeometry
from svomflow.simulation.eclairs import simulate_eclairs
from svomflow.simulation.photons import PhotonList
from svomflow.tasks.coded_mask.image_trigger import image_trigger
from svomflow.tasks.coded_mask.imaging import MaskModel

INST = load_instrument("eclairs")
MODEL = MaskModel.from_geometry(MaskGeometry.from_instrument(INST))
ATT = Attitude(10.0, 5.0, 0.0)
EXPOSURES = INST.get("image_trigger.exposures_s")[:3]


def _run(n_source: int, seed: int):
    rng = np.random.default_rng(seed)
    tan = (-0.15, 0.4)
    ra, dec = ATT.from_projected(*tan)
    t = np.sort(rng.uniform(60.0, 390.0, n_source))
    e = 4.0 * (1 - rng.random(n_source)) ** (-1 / 0.8)
    src = PhotonList(t, e, float(ra), float(dec), area_cm2=1100.0, label="slow")
    ev = simulate_eclairs(
        [src], attitude=ATT, t_start=0.0, t_stop=400.0, rng=rng, run_trigger=n_source > 0
    )
    found = image_trigger(
        ev.time,
        ev.y,
        ev.z,
        ev.energy_kev,
        MODEL,
        t_start=0.0,
        t_stop=400.0,
        exposures_s=EXPOSURES,
        band_kev=tuple(INST.get("bands_kev.image_trigger")),
        threshold=INST.get("image_trigger.snr_threshold"),
        gti=ev.gti,
    )
    return ev, found, tan


def test_slow_source_found_by_images_not_by_rate() -> None:
    ev, found, tan = _run(40000, 41)
    assert ev.trigger is None  # no significant rate excess on 10 ms .. 20 s
    assert found, "the image trigger missed the slow source"
    best = max(found, key=lambda d: d.snr)
    assert best.exposure_s > 80.0
    assert abs(best.tan_y - tan[0]) < 0.02 and abs(best.tan_z - tan[1]) < 0.02
    assert 60.0 < 0.5 * (best.t_start + best.t_stop) < 390.0
    assert all(d.exposure_s > 25.0 for d in found)  # too faint for 20 s images


def test_background_alone_gives_no_image_trigger() -> None:
    _, found, _ = _run(0, 42)
    assert found == []
