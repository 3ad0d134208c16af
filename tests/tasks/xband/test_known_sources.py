"""Known bright sources in the X-band ECLAIRs analysis: shared catalog, field test, cancellation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from svomflow.config import load_config, load_instrument
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.coded_mask import MaskGeometry, mask_pattern
from svomflow.products.eclairs_l1 import read_eclairs_l1
from svomflow.simulation.eclairs_sources import add_steady_sources
from svomflow.simulation.orbit import load_bright_sources
from svomflow.tasks.classification import packaged_known_sources
from svomflow.tasks.coded_mask.known_sources import angular_separation_deg, sources_in_field
from svomflow.tasks.vhf.config import VHFConfig
from svomflow.tasks.xband.config import XbandAnalysisConfig

GEOM = MaskGeometry.from_instrument(load_instrument("eclairs"))
# the simulator's CPL takes its photon index as `index`
CPL = {"model": "cpl", "index": -1.0, "epeak": 100.0}


def test_one_catalog_is_the_default_of_both_flows_and_config_overrides_it() -> None:
    packaged = packaged_known_sources()
    assert [s.name for s in packaged] == ["Crab", "Sco X-1", "Cyg X-1"]
    vhf = load_config(VHFConfig, flow="vhf_quick_analysis")
    xb = load_config(XbandAnalysisConfig, flow="xband_analysis")
    assert vhf.classification.known_sources == packaged
    assert xb.known_sources == packaged
    mine = {"known_sources": [{"name": "X", "ra_deg": 1.0, "dec_deg": 2.0}]}
    assert [s.name for s in load_config(XbandAnalysisConfig, overrides=mine).known_sources] == ["X"]
    assert load_config(XbandAnalysisConfig, overrides={"known_sources": []}).known_sources == []
    off = load_config(VHFConfig, overrides={"classification": {"known_sources": []}})
    assert off.classification.known_sources == []
    # each model gets its own copy: emptying one flow's list leaves the packaged default
    assert XbandAnalysisConfig().known_sources == packaged


def test_every_simulated_bright_source_is_in_the_catalog() -> None:
    """The analysis must know every source the simulator puts in the field."""
    cat = packaged_known_sources()
    for b in load_bright_sources():
        sep = min(angular_separation_deg(b.ra_deg, b.dec_deg, c.ra_deg, c.dec_deg) for c in cat)
        assert sep < 0.05, (b.name, sep)


def test_sources_in_field_keeps_only_sources_the_pixels_see() -> None:
    crab = ("Crab", 83.6331, 22.0145)
    att = Attitude(83.6331, 22.0145 - 10.0, 0.0)  # Crab 10 deg off axis
    pattern = mask_pattern(GEOM)
    found = sources_in_field([crab, ("Sco X-1", 244.9794, -15.6402)], att, GEOM, pattern)
    assert [s.name for s in found] == ["Crab"]
    s = found[0]
    assert 0.5 < s.coding_fraction < 1.2  # the random pattern is 40 % open only on average
    assert s.lit_pixels == pytest.approx(float(s.shadow.sum()))
    # behind the plane, and 60 deg off axis (outside the 89 deg square field): nothing
    assert sources_in_field([crab], Attitude(263.6, -22.0, 0.0), GEOM, pattern) == []
    assert sources_in_field([crab], Attitude(83.6331, 22.0145 - 60.0, 0.0), GEOM, pattern) == []
    # only usable pixels count: a source whose shadow falls on switched-off pixels is out
    ty, _ = att.to_projected(83.6331, 22.0145)
    usable = s.shadow <= 0
    assert sources_in_field([crab], att, GEOM, pattern, usable=usable) == []
    assert np.isfinite(ty)


def _grb_fluence_in(b: dict[str, Any], interval: tuple[float, float], band: str) -> float:
    """Injected fluence inside an interval: total times the share of the burst's events in it."""
    l1 = read_eclairs_l1(b["files"][0])
    grb = np.array([lb == "grb" for lb in l1.labels])[l1.origin]
    t = l1.time[grb] - b["t0"]
    frac = float(np.mean((t >= interval[0]) & (t < interval[1])))
    return b["truth"]["bands"][band]["energy_fluence_erg"] * frac


def _pull(value: float, lo: float | None, hi: float | None, truth: float) -> float:
    err = hi if value < truth else -(lo or 0.0)
    return (value - truth) / err if err and err > 0 else np.inf


def _eclairs_main_pulls(
    b: dict[str, Any], known: list[dict[str, Any]]
) -> tuple[dict[str, float], Any]:
    from svomflow.simulation.xband_mc import analyse_main

    cfg = XbandAnalysisConfig.model_validate(
        {
            "known_sources": known,
            "spectral": {"eclairs_method": "mask_weighted", "model": "cpl", "flux_samples": 200},
            "intervals": {"max_resolved": 1},
        }
    )
    res = analyse_main(b, cfg, fits=("ECL",))
    m = res.fit.summary()
    p = m["parameters"]
    fx = m["fluxes"]["fluence_4-150"]
    truth = _grb_fluence_in(b, tuple(m["interval"]), "4-150")
    pulls = {
        "alpha": _pull(
            p["index"]["value"], p["index"]["error_low"], p["index"]["error_high"], CPL["index"]
        ),
        "epeak": _pull(
            p["epeak"]["value"], p["epeak"]["error_low"], p["epeak"]["error_high"], CPL["epeak"]
        ),
        "fluence": _pull(fx["value"], fx["error_low"], fx["error_high"], truth),
    }
    return pulls, res


def test_known_source_in_the_field_is_cancelled_by_the_mask_weights(tmp_path: Path) -> None:
    """A 3-Crab source 5 deg from the burst: listed, the fit is right; unlisted, it is biased."""
    from svomflow.simulation.xband_mc import simulate_burst

    b = simulate_burst(tmp_path / "sim", 3, spectrum=CPL)
    # 5 deg north of the burst, where the burst's weights leak -8 % of its counts into the sum
    src = ("Crab", float(b["ra"]), float(b["dec"]) + 5.0, 3.0)
    added = add_steady_sources(b["files"][0], [src], np.random.default_rng(1003))
    assert added["steady:Crab"]["events"] > 50_000  # brighter than the burst over the file
    known = [{"name": "Crab-like", "ra_deg": src[1], "dec_deg": src[2]}]

    pulls, res = _eclairs_main_pulls(b, known)
    assert res.spectra.cancelled_sources["eclairs"] == ["Crab-like"]
    # |pull| < 3.3 fails with probability 0.1 % per quantity for a correct analysis
    assert all(abs(v) < 3.3 for v in pulls.values()), pulls
    # the imaging still finds the burst (within its 90 % radius, systematics included)
    loc = res.positions.summary()["eclairs"]
    sep = angular_separation_deg(loc["ra_deg"], loc["dec_deg"], b["ra"], b["dec"])
    assert sep * 60 < loc["r90_arcmin"]
    pha = next(p for p in res.spectra.products if (p.type_code, p.instrument) == ("PHA", "ECL"))
    hdr = pha.model.to_fits()["SPECTRUM"].header
    assert hdr["NKNOWN"] == 1 and hdr["KNOWN01"] == "Crab-like"
    assert hdr["WTTEMPL"] == 3  # flat, CXB, the source's shadow

    biased, res_none = _eclairs_main_pulls(b, [])
    assert res_none.spectra.cancelled_sources["eclairs"] == []
    # the leak of the unlisted source is far outside the errors
    assert max(abs(biased["alpha"]), abs(biased["fluence"])) > 4.0, biased
