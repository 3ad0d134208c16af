"""Glue between scenarios and the instrument simulators (one runner per instrument).

Each runner takes a :class:`~svomflow.simulation.scenario.ScenarioContext` and a random
generator, writes its L1 files into the context's output directory and returns its truth
(file names, counts, trigger...). The instrument modules are imported inside the runners, so a
simulator that is missing makes only the scenarios that use it unavailable.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from svomflow.simulation.orbit import (
    background_modulation,
    bright_source_photons,
    saa_intervals,
    source_visible,
)
from svomflow.simulation.scenario import ScenarioContext

__all__ = ["run_colibri", "run_eclairs", "run_grm", "run_mxt"]


def _scenario_id(ctx: ScenarioContext) -> str:
    return f"{ctx.scenario.name}_{ctx.seed}"


def run_grm(ctx: ScenarioContext, rng: np.random.Generator) -> dict[str, Any]:
    """Simulate the GRM events of the scenario's bursts; write the L1 file and the RSPs."""
    from svomflow.config.instrument import load_instrument
    from svomflow.instruments.grm_response import GRMResponseModel, grm_response
    from svomflow.products.ogip import write_rsp
    from svomflow.simulation.calibration import grm_calibration, write_calibration_files
    from svomflow.simulation.grm import grm_photon_area, simulate_grm, write_grm_l1

    inst = load_instrument("grm")
    opts = {"background": True, "calibration_source": True, "write_rsp": True, **ctx.options}
    e_lo, e_hi = float(opts.get("e_min_kev", 10.0)), float(opts.get("e_max_kev", 10000.0))
    photons = [
        g.sample_photons(
            rng,
            area_cm2=grm_photon_area(),
            t_start=ctx.t_start,
            t_stop=ctx.t_stop,
            e_min_kev=e_lo,
            e_max_kev=e_hi,
        )
        for g in ctx.grbs
    ]
    sim = simulate_grm(
        photons,
        attitude=ctx.attitude,
        t_start=ctx.t_start,
        t_stop=ctx.t_stop,
        rng=rng,
        orbit=ctx.orbit,
        background=bool(opts["background"]),
        calibration_source=bool(opts["calibration_source"]),
    )
    path = write_grm_l1(
        ctx.out_dir / "grm_l1_events.fits",
        sim,
        attitude=ctx.attitude,
        trigger_time=ctx.t0,
        extra={"TRIGID": _scenario_id(ctx)[:68]},
    )
    calibration = write_calibration_files(
        grm_calibration(
            inst, sim.channel_edges_kev, {n: d.dead_time_s for n, d in sim.detectors.items()}
        ),
        ctx,
        inst,
    )
    rsps = {}
    if opts["write_rsp"]:
        model = GRMResponseModel.from_instrument(inst)
        for g in ctx.grbs[:1]:
            for det in model.detectors:
                lo, hi, m, eb = grm_response(
                    (g.ra_deg, g.dec_deg), detector=det, attitude=ctx.attitude, model=model
                )
                p = ctx.out_dir / f"grm_{det.lower()}_{g.name}.rsp"
                write_rsp(
                    p,
                    lo,
                    hi,
                    m,
                    eb,
                    telescope=inst.telescope,
                    instrument=inst.instrument,
                    detector=det,
                    direction_radec=(g.ra_deg, g.dec_deg),
                )
                rsps[det] = p.name
    return {
        "files": {"events": path.name, "rsp": rsps, "calibration": calibration},
        **sim.truth,
    }


def run_eclairs(ctx: ScenarioContext, rng: np.random.Generator) -> dict[str, Any]:
    """Simulate ECLAIRs events (bursts + known bright sources) and write the L1 file."""
    from svomflow.config.instrument import load_instrument
    from svomflow.products.eclairs_l1 import write_eclairs_l1
    from svomflow.simulation.calibration import eclairs_calibration, write_calibration_files
    from svomflow.simulation.eclairs import EclairsBackground, simulate_eclairs

    inst = load_instrument("eclairs")
    opts = {"bright_sources": ctx.scenario.bright_sources, **ctx.options}
    area = float(opts.get("photon_area_cm2", inst.get("detector_plane.area_cm2")))
    e_lo, e_hi = float(opts.get("e_min_kev", 3.0)), float(opts.get("e_max_kev", 200.0))
    half = float(inst.get("mask.field_of_view_deg")) / 2 * np.sqrt(2)  # square field corners
    photons = [
        g.sample_photons(
            rng,
            area_cm2=area,
            t_start=ctx.t_start,
            t_stop=ctx.t_stop,
            e_min_kev=e_lo,
            e_max_kev=e_hi,
        )
        for g in ctx.grbs
    ]
    if opts["bright_sources"]:
        photons += bright_source_photons(
            rng,
            attitude=ctx.attitude,
            t_start=ctx.t_start,
            t_stop=ctx.t_stop,
            area_cm2=area,
            e_min_kev=e_lo,
            e_max_kev=e_hi,
            field_half_angle_deg=half,
        )
    # detectors off in the SAA (option detectors_off_in_saa: false keeps them on, as a
    # spacecraft whose SAA switch-off failed: the reader's SAA cut is then all that removes it)
    saa_off = bool(opts.get("detectors_off_in_saa", True))
    saa = (
        saa_intervals(ctx.t_start, ctx.t_stop, orbit=ctx.orbit)
        if ctx.orbit and saa_off
        else np.empty((0, 2))
    )
    occulted = None
    background: EclairsBackground | bool = True
    if ctx.orbit is not None:
        orbit, att = ctx.orbit, ctx.attitude
        amplitude = float(inst.get("background.earth_modulation_fraction"))
        cone = float(inst.get("mask.field_of_view_deg")) / 2

        def occulted(t: np.ndarray, ra: float, dec: float) -> np.ndarray:
            return ~source_visible(t, ra, dec, orbit=orbit)

        def modulation(t: np.ndarray) -> np.ndarray:
            # the background drops as the Earth enters the field (geometric, from the orbit)
            return background_modulation(
                t, attitude=att, amplitude=amplitude, field_half_angle_deg=cone, orbit=orbit
            )

        background = EclairsBackground.from_instrument(inst, modulation=modulation)

    events = simulate_eclairs(
        photons,
        attitude=ctx.attitude,
        t_start=ctx.t_start,
        t_stop=ctx.t_stop,
        rng=rng,
        background=background,
        saa_intervals=[tuple(x) for x in saa],
        occulted=occulted,
    )
    if ctx.orbit is not None:
        events.orbit = _ground_track(ctx, float(opts.get("orbit_step_s", 10.0)))
    path = write_eclairs_l1(
        events, ctx.out_dir / "eclairs_l1_events.fits", trigger_id=_scenario_id(ctx)[:68]
    )
    calibration = write_calibration_files(eclairs_calibration(inst, events.dead_pixels), ctx, inst)
    trig = events.trigger
    return {
        "files": {"events": path.name, "calibration": calibration},
        "n_events": len(events),
        "photon_area_cm2": area,
        "sources_in_field": [p.label for p in photons],
        "background_modulation": "orbit" if ctx.orbit is not None else "instrument sinusoid",
        "onboard_trigger": None
        if trig is None
        else {
            "time": trig.time,
            "band_kev": list(trig.band_kev),
            "timescale_s": trig.timescale_s,
            "snr": trig.snr,
        },
    }


def _ground_track(ctx: ScenarioContext, step_s: float) -> Any:
    """Return the orbit's ground track over the observation (the L1 file's ORBIT table)."""
    from svomflow.products.orbit_track import OrbitTrack

    assert ctx.orbit is not None
    n = max(int(np.ceil((ctx.t_stop - ctx.t_start) / step_s)), 1)
    t = np.linspace(ctx.t_start, ctx.t_start + n * step_s, n + 1)
    lon, lat = ctx.orbit.ground_track(t)
    return OrbitTrack(t, lon, lat, np.full(t.size, float(ctx.orbit.altitude_km)))


def run_mxt(ctx: ScenarioContext, rng: np.random.Generator) -> dict[str, Any]:
    """Simulate MXT passes through the MXT module's scenario entry point."""
    from svomflow.simulation.mxt import simulate_scenario

    spec = dict(ctx.options)
    spec.setdefault("ra_deg", ctx.attitude.ra_deg)
    spec.setdefault("dec_deg", ctx.attitude.dec_deg)
    spec.setdefault("roll_deg", ctx.attitude.roll_deg)
    spec.setdefault("tstart", ctx.t_start)
    return simulate_scenario(spec, ctx.out_dir / "mxt", rng)


def run_colibri(ctx: ScenarioContext, rng: np.random.Generator) -> dict[str, Any]:
    """Simulate a COLIBRI night (calibration + alert sequence) with the COLIBRI module."""
    from svomflow.simulation.colibri import simulate_colibri_night

    seed = int(rng.integers(0, 2**31 - 1))
    return simulate_colibri_night(ctx.out_dir / "colibri", seed, **ctx.options)
