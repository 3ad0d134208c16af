"""The ``alert_loop`` simulator: the COLIBRI follow-up of a scenario's burst, for the e2e bench.

:func:`run_alert_loop_sim` (registered in :data:`svomflow.simulation.scenario.SIMULATORS`):
after the ECLAIRs and MXT simulators of the same scenario, it simulates a COLIBRI night
whose alert sequence (trigger id = the burst id) has the burst's optical afterglow at the
burst's position and unrelated variable sources near it, and writes masters equal to the
detector truth so that GP1 reduces the frames without a nightly run.

The chain that runs the flows on these data (VHF/MXT -> announcements -> GP1 -> science
database) lies above the simulator in the layers (ARCHITECTURE.md §11): it is
:mod:`svomflow.operations.alert_loop`, which ``svomflow simulate`` runs after the scenario
when ``instrument_options.alert_loop.run_chain`` is true.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from pydantic import BaseModel, ConfigDict, Field
from svomflow.errors import ConfigError
from svomflow.instruments.ccd_camera import CameraModel, load_camera
from svomflow.products.ccd_masters import MasterFrame
from svomflow.products.ogip import write_hdulist
from svomflow.simulation.colibri import ScienceSpec, simulate_colibri_night
from svomflow.simulation.scenario import ScenarioContext
from svomflow.simulation.starfield import draw_stars, tan_wcs

__all__ = [
    "AlertLoopOptions",
    "VariableSpec",
    "inject_sources",
    "run_alert_loop_sim",
]


class VariableSpec(BaseModel):
    """A point source injected in the alert frames: offset from the burst, power-law light curve.

    Its flux is ``F(t) = F_ref (t / t_ref)^-decay_index`` (t after the trigger);
    ``decay_index = 0`` is constant, negative brightens.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    offset_arcsec: tuple[float, float] = Field(
        description="(east, north) offset from the burst position, arcsec."
    )
    mag_ref: float = Field(description="Magnitude at t_ref_s in the sequence's band.")
    t_ref_s: float = 100.0
    decay_index: float = 0.0


class AlertLoopOptions(BaseModel):
    """The COLIBRI part of the scenario (``instrument_options.alert_loop``)."""

    model_config = ConfigDict(extra="forbid")

    size: tuple[int, int] = Field((384, 384), description="Frame size (rows, columns).")
    n_frames: int = Field(4, ge=2, description="Alert images of the sequence.")
    exptime_s: float = 60.0
    first_delay_s: float = 120.0
    cadence_s: float = 75.0
    band: str = "r"
    afterglow_mag_ref: float = 16.5
    afterglow_t_ref_s: float = 100.0
    afterglow_decay_index: float = 1.2
    pointing_offset_arcsec: tuple[float, float] = Field(
        (15.0, -10.0), description="Field centre minus the burst position (east, north), arcsec."
    )
    variables: list[VariableSpec] = Field(default_factory=list)
    star_density_per_arcmin2: float = 20.0
    night: str = "2026-11-23"
    better_position_after: int = Field(
        2, ge=1, description="GP1 images processed before the MXT position is announced."
    )
    run_chain: bool = Field(
        False,
        description="Asks the simulate command to run the chain (flows, NATS, GP1, science "
        "database) on the data once written (svomflow.operations.alert_loop); the simulator "
        "itself only simulates.",
    )


def _mean_rate(
    mag_ref: float, t_ref: float, alpha: float, zp: float, t1: float, t2: float
) -> float:
    """Mean e-/s over [t1, t2] of F = F_ref (t / t_ref)^-alpha (F_ref from mag_ref and zp)."""
    f_ref = 10.0 ** (-0.4 * (mag_ref - zp))
    if abs(alpha - 1.0) < 1e-9:
        integral = t_ref * math.log(t2 / t1)
    else:
        integral = t_ref**alpha * (t2 ** (1 - alpha) - t1 ** (1 - alpha)) / (1 - alpha)
    return f_ref * integral / (t2 - t1)


def _offset(ra: float, dec: float, east_arcsec: float, north_arcsec: float) -> tuple[float, float]:
    return (
        (ra + east_arcsec / 3600.0 / math.cos(math.radians(dec))) % 360.0,
        dec + north_arcsec / 3600.0,
    )


def inject_sources(
    truth: dict[str, Any],
    sources: Sequence[tuple[str, float, float, float, float, float]],
    camera: CameraModel,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Add point sources to the raw science frames of a simulated COLIBRI night, in place.

    Each source is ``(name, ra, dec, mag_ref, t_ref_s, decay_index)``; its photons (Poisson)
    go through the frame's flat field and gain into the raw ADU, drawn with the frame's PSF
    at the frame's pointing, as the simulator draws its stars.

    Returns
    -------
    list of dict
        Per source and frame: name, frame, pixel position, electrons and magnitude injected.
    """
    raw_dir = Path(truth["raw_dir"])
    tdir = Path(truth["truth_dir"])
    ny, nx = truth["size"]
    x_off = camera.overscan_columns if camera.overscan_side == "left" else 0
    out = []
    for fr in truth["science"]["frames"]:
        band = fr["filter"]
        flat = fits.getdata(tdir / truth["detector"]["maps"]["flats"][band]).astype(np.float64)
        ra_c, dec_c = fr["pointing"]
        wcs = tan_wcs(float(ra_c), float(dec_c), (ny, nx), camera.pixel_scale_arcsec)
        light = np.zeros((ny, nx))
        zp = camera.zero_points_mag[band]
        t1, t2 = fr["t_start_s"], fr["t_stop_s"]
        for name, ra, dec, mag_ref, t_ref, alpha in sources:
            x, y = (float(v) for v in wcs.all_world2pix([[ra, dec]], 0)[0])
            rate = _mean_rate(mag_ref, t_ref, alpha, zp, t1, t2)
            e = rate * fr["exptime"]
            draw_stars(
                light, np.array([x]), np.array([y]), np.array([e]),
                fwhm_px=fr["fwhm_px"], profile=fr["profile"], beta=fr["moffat_beta"],
            )  # fmt: skip
            mag = zp - 2.5 * math.log10(rate)
            out.append({"name": name, "frame": fr["file"], "x": x, "y": y, "e": e, "mag": mag})
        path = raw_dir / fr["file"]
        with fits.open(path) as hdul:
            data = hdul[0].data.astype(np.float64)
            header = hdul[0].header.copy()
        adu = rng.poisson(light * flat) / camera.gain
        data[:, x_off : x_off + nx] += adu
        data = np.clip(np.rint(data), 0, min(camera.saturation_adu, 65535)).astype(np.uint16)
        write_hdulist([fits.PrimaryHDU(data, header=header)], path)
    return out


def _truth_masters(truth: dict[str, Any], out: Path, band: str) -> dict[str, str]:
    """Write masters equal to the detector truth (what the nightly flow would recover)."""
    td = Path(truth["truth_dir"])
    det = truth["detector"]
    g = det["gain"]

    def master(kind: str, data: np.ndarray, meta: dict[str, Any]) -> MasterFrame:
        d = np.asarray(data, np.float32)
        return MasterFrame(kind, d, np.full_like(d, 1e-3), np.full(d.shape, 5, np.int16), meta)

    bias = master(
        "BIAS", fits.getdata(td / "bias_structure.fits"), {"RDNOISE": det["read_noise_e"] / g}
    )
    dark = master(
        "DARK", fits.getdata(td / "dark_rate.fits") / g, {"CCDTEMP": det["dark_ref_temperature_c"]}
    )
    flat = master("FLAT", fits.getdata(td / f"flat_{band}.fits"), {})
    return {
        "BIAS": str(bias.write(out / "master_bias.fits")),
        "DARK": str(dark.write(out / "master_dark.fits")),
        "FLAT": str(flat.write(out / f"master_flat_{band}.fits")),
    }


def run_alert_loop_sim(ctx: ScenarioContext, rng: np.random.Generator) -> dict[str, Any]:
    """Simulate the COLIBRI follow-up of the scenario's first burst (the ``alert_loop`` simulator).

    The burst id (the images' ``TRIGID``) is ``<scenario>_<seed>``, as the ECLAIRs and MXT
    files of the same scenario carry it.
    """
    if not ctx.grbs:
        raise ConfigError("the alert loop needs a burst (grbs) in the scenario")
    opts = AlertLoopOptions.model_validate(ctx.options)
    # a stream of its own from the scenario's seed: the runner's stream depends on where
    # it sits in SIMULATORS, and the follow-up data should not change when others register
    del rng
    rng = np.random.default_rng([ctx.seed, 0xA1E7])
    cam = load_camera("colibri_ddrago_b")
    grb = ctx.grbs[0]
    burst = f"{ctx.scenario.name}_{ctx.seed}"[:68]
    ra_c, dec_c = _offset(grb.ra_deg, grb.dec_deg, *opts.pointing_offset_arcsec)
    out = ctx.out_dir / "colibri"
    spec = ScienceSpec(
        n_frames=opts.n_frames,
        filters=(opts.band,),
        exptime_s=opts.exptime_s,
        first_delay_s=opts.first_delay_s,
        cadence_s=opts.cadence_s,
        trigger_id=burst,
        object_name=burst,
        afterglow=False,  # injected below at the burst's own position
        dither_arcsec=1.0,
    )
    night = simulate_colibri_night(
        out,
        int(rng.integers(0, 2**31 - 1)),
        night=opts.night,
        size=opts.size,
        n_bias=5,
        n_dark=5,
        dark_exposures=(opts.exptime_s,),
        n_flat_per_filter=5,
        flat_filters=[opts.band],
        science=spec,
        field_center=(ra_c, dec_c),
        star_density_per_arcmin2=opts.star_density_per_arcmin2,
    )
    sources = [
        ("afterglow", grb.ra_deg, grb.dec_deg, opts.afterglow_mag_ref, opts.afterglow_t_ref_s,
         opts.afterglow_decay_index),
        *(
            (v.name, *_offset(grb.ra_deg, grb.dec_deg, *v.offset_arcsec), v.mag_ref, v.t_ref_s,
             v.decay_index)
            for v in opts.variables
        ),
    ]  # fmt: skip
    injected = inject_sources(night, sources, cam, rng)
    masters = _truth_masters(night, out, opts.band)
    science = sorted(Path(night["raw_dir"]) / f["file"] for f in night["science"]["frames"])
    truth = {
        "burst_id": burst,
        "trigger_time": night["science"]["trigger_time"],
        "colibri_dir": str(out),
        "refcat_dir": str(out / "refcat"),
        "masters": masters,
        "science_frames": [str(p) for p in science],
        "sources": [
            {"name": n, "ra_deg": ra, "dec_deg": dec, "mag_ref": m, "t_ref_s": t, "decay_index": a}
            for n, ra, dec, m, t, a in sources
        ],
        "injected": injected,
        "options": opts.model_dump(mode="json"),
    }
    (out / "alert_loop_truth.json").write_text(json.dumps(truth, indent=1))
    return truth
