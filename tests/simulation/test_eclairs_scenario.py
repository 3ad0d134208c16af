"""ECLAIRs through the scenario runner: orbit background modulation, occultation, L1 labels."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
from svomflow.config import load_instrument
from svomflow.instruments.attitude import Attitude
from svomflow.products.eclairs_l1 import read_eclairs_l1
from svomflow.simulation.orbit import (
    background_modulation,
    load_orbit,
    orbit_facing,
    source_visible,
)
from svomflow.simulation.scenario import load_scenario, run_scenario

INST = load_instrument("eclairs")


def test_bright_sources_in_the_field_write_and_read_back_without_warnings(tmp_path) -> None:
    sc = load_scenario(
        "bright_long_grb",
        ["instruments=[eclairs]", "time.start_s=-2", "time.stop_s=3", "bright_sources=true",
         "attitude.ra_deg=260.0", "attitude.dec_deg=20.0"],
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the long label card used to raise a VerifyWarning
        truth = run_scenario(sc, tmp_path, seed=2)
        ev = read_eclairs_l1(tmp_path / truth["instruments"]["eclairs"]["files"]["events"])
    in_field = truth["instruments"]["eclairs"]["sources_in_field"]
    # Sco X-1 and Cyg X-1 in the field: the former one-card label list overflowed 80 chars
    assert len(in_field) >= 3, in_field
    old_card = f"ORIGLBLS= '{','.join(ev.labels)}' / truth: ORIGIN indexes this list"
    assert len(old_card) > 80
    # every simulated component comes back under its own label, in ORIGIN order
    assert ev.labels[: len(in_field)] == in_field
    assert set(np.unique(ev.origin)) <= set(range(len(ev.labels)))
    assert np.any(ev.origin == ev.labels.index(in_field[1]))  # a bright source's events


def test_scenario_background_follows_the_orbit_earth_modulation(tmp_path) -> None:
    # a long quiet span, no burst and no bright sources: only background; the orbit is phased
    # so the Earth is behind at T0, then moves into the field
    sc = load_scenario(
        "bright_long_grb",
        ["instruments=[eclairs]", "grbs=[]", "bright_sources=false", "time.start_s=0",
         "time.stop_s=2400"],
    )  # fmt: skip
    truth = run_scenario(sc, tmp_path, seed=3)
    assert truth["instruments"]["eclairs"]["background_modulation"] == "orbit"
    ev = read_eclairs_l1(tmp_path / truth["instruments"]["eclairs"]["files"]["events"])
    att = Attitude(sc.attitude.ra_deg, sc.attitude.dec_deg, sc.attitude.roll_deg)
    orbit = orbit_facing(load_orbit(), sc.epoch_s, att.ra_deg, att.dec_deg)
    edges = np.linspace(truth["t_start"], truth["t_stop"], 25)
    mid = 0.5 * (edges[1:] + edges[:-1])
    model = background_modulation(
        mid,
        attitude=att,
        amplitude=float(INST.get("background.earth_modulation_fraction")),
        field_half_angle_deg=float(INST.get("mask.field_of_view_deg")) / 2,
        orbit=orbit,
    )
    # the geometric model must vary over the span for the test to mean something
    assert model.max() - model.min() > 0.1
    # exposure per bin inside the GTIs (the SAA switches the detectors off)
    expo = np.array(
        [
            sum(max(0.0, min(b, g1) - max(a, g0)) for g0, g1 in ev.gti)
            for a, b in itertools.pairwise(edges)
        ]
    )
    counts = np.histogram(ev.time, edges)[0]
    ok = expo > 0.5 * np.diff(edges)
    rate = counts[ok] / expo[ok]
    # rates proportional to the modulation: fit the scale, chi-square with Poisson errors
    scale = rate.sum() / model[ok].sum()
    chi2 = np.sum((counts[ok] - scale * model[ok] * expo[ok]) ** 2 / (scale * model[ok] * expo[ok]))
    n = int(ok.sum())
    assert chi2 < n + 5 * np.sqrt(2 * n), (chi2, n)
    # and a constant rate does not fit (the sinusoid default would not follow this shape)
    flat = counts[ok].sum() / expo[ok].sum()
    chi2_flat = np.sum((counts[ok] - flat * expo[ok]) ** 2 / (flat * expo[ok]))
    assert chi2_flat > n + 10 * np.sqrt(2 * n)
    # an Earth-occulted direction would also be hidden for point sources: consistency
    assert source_visible(np.array([sc.epoch_s]), att.ra_deg, att.dec_deg, orbit=orbit)[0]
