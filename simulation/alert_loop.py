"""The end-to-end alert loop on the bench: burst -> VHF/MXT -> announcements -> GP1 -> science DB.

Two halves:

* :func:`run_alert_loop_sim` (the ``alert_loop`` simulator of the scenarios, registered in
  :data:`svomflow.simulation.scenario.SIMULATORS`): after the ECLAIRs and MXT simulators of
  the same scenario, it simulates a COLIBRI night whose alert sequence (trigger id = the
  burst id) has the burst's optical afterglow at the burst's position and unrelated variable
  sources near it, and writes masters equal to the detector truth so that GP1 reduces the
  frames without a nightly run.
* :func:`run_alert_loop` drives the chain with timings: the VHF flow on the ECLAIRs data
  (its QPO announced on NATS), GP1 on the first images guided by the best announced position,
  the MXT flow (its source list announced), GP1 on the remaining images with the better
  position, then the delivery to the science database; it says at each image which candidate
  GP1 took and whether it is the injected afterglow.

The chain's stages run flows and read the bus, which lie above the simulator in the layers
(ARCHITECTURE.md §11): they are an object given to :func:`run_alert_loop`, by default the one
:data:`STAGES_ENTRYPOINT` names (a ``module:attribute`` entry point, resolved the way
:data:`~svomflow.simulation.scenario.SIMULATORS` and the bench's trial functions are, so
this module imports no flow).
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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
    "STAGES_ENTRYPOINT",
    "AlertLoopOptions",
    "AlertLoopStages",
    "ChainStep",
    "GP1Choice",
    "VariableSpec",
    "chain_summary",
    "inject_sources",
    "run_alert_loop",
    "run_alert_loop_sim",
]

#: The stages that run the chain's flows (see the module docstring).
STAGES_ENTRYPOINT = "svomflow.operations.position_feed:FlowStages"


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
        description="After simulating, run the chain (flows, NATS, GP1, science database) "
        "with the stages of STAGES_ENTRYPOINT and print it.",
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
    if opts.run_chain:
        # the other simulators of the scenario ran first and left their files here
        mxt = json.loads((ctx.out_dir / "mxt" / "truth.json").read_text())
        full = {
            "instruments": {
                "eclairs": {"files": {"events": "eclairs_l1_events.fits"}},
                "mxt": mxt,
                "alert_loop": truth,
            }
        }
        chain = run_alert_loop(ctx.out_dir, full, report=print)
        for line in chain_summary(chain):
            print(line)
        (ctx.out_dir / "alert_loop_chain.json").write_text(json.dumps(chain, indent=1, default=str))
        truth["chain"] = chain
    return truth


def chain_summary(chain: dict[str, Any]) -> list[str]:
    """Return the closing lines of a chain run: links with timings, choices, latency."""
    lines = [f"alert loop of {chain['burst_id']}:"]
    for s in chain["steps"]:
        lines.append(f"  {s['start_s']:7.1f} -> {s['end_s']:7.1f} s  {s['name']}: {s['detail']}")
    verdict = "the afterglow" if chain["right_transient"] else "NOT the afterglow"
    lines.append(f"GP1's final choice: {verdict}")
    if chain["delivered"] is None:
        lines.append("science database: delivery flow not installed (chain stopped at GP1)")
    lines.append(f"end-to-end latency (alert data -> last product): {chain['end_to_end_s']:.1f} s")
    return lines


# --- the chain ---------------------------------------------------------------------------


@dataclass
class GP1Choice:
    """What GP1 chose after one image: the position used and the transient taken."""

    image: str
    position_source: str | None
    position_r90_arcmin: float | None
    chosen: str | None
    probability: float | None
    candidates: list[dict[str, Any]]


@dataclass
class ChainStep:
    """One link of the chain: what ran, when it started and ended (s after the start)."""

    name: str
    start_s: float
    end_s: float
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class AlertLoopStages(Protocol):
    """What runs the chain's links (flows, the bus, the science database)."""

    def start(self, burst_id: str) -> None:
        """Prepare: Prefect server, the position feed subscribed to the bus."""

    def vhf(self, event_files: list[str], burst_id: str) -> dict[str, Any]:
        """Run the VHF quick analysis; its products are announced."""

    def mxt(self, files: dict[str, Any], mxt_dir: Path, burst_id: str) -> dict[str, Any]:
        """Run the MXT analysis; its source list is announced."""

    def wait_position(self, burst_id: str, source_prefix: str, timeout_s: float) -> Any:
        """Wait until the feed holds a position of the burst from ``source_prefix``; return it."""

    def gp1(self, image: str, truth: dict[str, Any], index: int) -> dict[str, Any]:
        """Run GP1 on one image with the burst's best position so far; return its result."""

    def deliver(self, burst_id: str) -> dict[str, Any] | None:
        """Deliver the burst's products to the science database (None: not available)."""

    def stop(self) -> None:
        """Stop the feed."""


def load_stages(entrypoint: str = STAGES_ENTRYPOINT, **kwargs: Any) -> AlertLoopStages:
    """Return the stages an entry point (``module:attribute``) names, built with ``kwargs``."""
    module, _, attr = entrypoint.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"alert-loop stages {entrypoint} are not available: {exc}") from None
    return factory(**kwargs)  # type: ignore[no-any-return]


def _sep_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    dra = (ra1 - ra2 + 180.0) % 360.0 - 180.0
    return math.hypot(dra * math.cos(math.radians(dec2)), dec1 - dec2) * 3600.0


def _name_of(ra: float, dec: float, sources: list[dict[str, Any]], tol_arcsec: float) -> str:
    """Return the injected source at (ra, dec) (within ``tol_arcsec``), else 'unknown'."""
    best = min(sources, key=lambda s: _sep_arcsec(ra, dec, s["ra_deg"], s["dec_deg"]))
    if _sep_arcsec(ra, dec, best["ra_deg"], best["dec_deg"]) <= tol_arcsec:
        return str(best["name"])
    return "unknown"


def gp1_choice(result: dict[str, Any], image: str, truth: dict[str, Any]) -> GP1Choice:
    """Return what a GP1 run chose for the burst's sequence, named after the injected sources."""
    seq = next(iter(result.get("sequences", {}).values()), None)
    if seq is None:
        return GP1Choice(Path(image).name, None, None, None, None, [])
    pos = seq.get("alert_position") or {}
    t = seq.get("transient")
    srcs = truth["alert_loop"]["sources"]
    cands = [
        {
            "name": _name_of(c["ra_deg"], c["dec_deg"], srcs, 2.0),
            "probability": c["probability"],
            "in_region": c["in_region"],
            "separation_arcmin": c["separation_arcmin"],
            "decay_index": c["decay_index"],
            "snr": c["snr"],
        }
        for c in seq.get("candidates", [])
    ]
    chosen = None if not t else _name_of(t["ALPHA_J2000"], t["DELTA_J2000"], srcs, 2.0)
    prob = next((c["probability"] for c in cands if c["name"] == chosen), None)
    r90 = None
    if pos:
        k = math.sqrt(-2 * math.log1p(-pos["confidence"]))
        sig = math.hypot(pos["error_radius_arcmin"] / k, pos.get("systematic_arcmin", 0.0))
        r90 = sig * math.sqrt(-2 * math.log(0.1))
    return GP1Choice(Path(image).name, pos.get("source"), r90, chosen, prob, cands)


def _delivery_detail(result: dict[str, Any] | None) -> str:
    """Describe a delivery: counts per outcome and the reasons of refused/flagged products."""
    if result is None:
        return "not available"
    parts = []
    for key, value in result.items():
        n = value if isinstance(value, int) else len(value)
        parts.append(f"{n} {key}")
    for key in ("refused", "flagged"):
        for pid, why in list((result.get(key) or {}).items())[:3]:
            parts.append(f"{key} {pid}: {why}")
    return "; ".join(parts)


def run_alert_loop(
    sim_dir: str | Path,
    truth: dict[str, Any],
    stages: AlertLoopStages | None = None,
    *,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the chain on a simulated ``e2e_alert_loop`` scenario; return the steps and choices.

    Parameters
    ----------
    sim_dir
        The scenario's output directory (``svomflow simulate e2e_alert_loop -o DIR``).
    truth
        Its truth (``truth.json``); ``truth["instruments"]["alert_loop"]`` is the COLIBRI part.
    stages
        What runs the links (default: :func:`load_stages`).
    report
        Told one line per link as the chain advances.
    """
    say = report or (lambda _line: None)
    sim = Path(sim_dir)
    loop = truth["instruments"]["alert_loop"]
    truth = {**truth, "alert_loop": loop}
    burst = loop["burst_id"]
    opts = AlertLoopOptions.model_validate(loop["options"])
    st = stages or load_stages()
    t0 = time.perf_counter()
    steps: list[ChainStep] = []
    choices: list[GP1Choice] = []

    def timed(name: str, fn: Callable[[], Any], detail: Callable[[Any], str]) -> Any:
        a = time.perf_counter() - t0
        value = fn()
        b = time.perf_counter() - t0
        steps.append(ChainStep(name, a, b, detail(value)))
        say(f"{b:8.1f} s  {name}: {steps[-1].detail}")
        return value

    st.start(burst)
    try:
        ecl = truth["instruments"]["eclairs"]["files"]["events"]
        timed("VHF flow (ECLAIRs)", lambda: st.vhf([str(sim / ecl)], burst),
              lambda r: f"{len(r.get('products', {}))} products")  # fmt: skip
        first = timed(
            "announcement -> feed (QPO_ECL)",
            lambda: st.wait_position(burst, "QPO_ECL", 60.0),
            lambda p: "no position" if p is None else p.label(),
        )
        frames = loop["science_frames"]
        mxt_done = False
        for k, image in enumerate(frames):
            if k == opts.better_position_after and not mxt_done:
                mxt_files: dict[str, Any] = truth["instruments"]["mxt"]["files"]

                def run_mxt(files: dict[str, Any] = mxt_files) -> dict[str, Any]:
                    return st.mxt(files, sim / "mxt", burst)

                timed("MXT flow", run_mxt, lambda r: f"{len(r.get('sources', []))} sources")
                timed(
                    "announcement -> feed (SRCLIST_MXT)",
                    lambda: st.wait_position(burst, "SRCLIST_MXT", 60.0),
                    lambda p: "no position" if p is None else p.label(),
                )
                mxt_done = True

            def described(r: dict[str, Any], image: str = image) -> str:
                c = gp1_choice(r, image, truth)
                choices.append(c)
                return (
                    f"position {c.position_source or 'none'}"
                    + (f" (r90 {c.position_r90_arcmin:.2f}')" if c.position_r90_arcmin else "")
                    + f" -> {c.chosen or 'no transient'}"
                    + (f" P={c.probability:.3f}" if c.probability is not None else "")
                )

            def run_gp1(image: str = image, k: int = k) -> dict[str, Any]:
                return st.gp1(image, truth, k)

            timed(f"GP1 image {k + 1}/{len(frames)}", run_gp1, described)
        delivered = timed(
            "science database delivery",
            lambda: st.deliver(burst),
            _delivery_detail,
        )
    finally:
        st.stop()
    total = time.perf_counter() - t0
    final = choices[-1] if choices else None
    return {
        "burst_id": burst,
        "steps": [s.__dict__ for s in steps],
        "choices": [c.__dict__ for c in choices],
        "first_position": None if first is None else first.model_dump(mode="json"),
        "right_transient": final is not None and final.chosen == "afterglow",
        "delivered": delivered,
        "end_to_end_s": total,
        "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
