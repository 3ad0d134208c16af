"""OTLOC steps of the VHF analysis: image trigger, coded-mask position, count-ratio position.

Which step applies to an instrument is read from its data and calibration, never from its
name: an instrument whose events carry detector pixels (its definition has a mask) gets the
image trigger and the coded-mask quick position, with the dead and noisy pixels of its
``BADPIX``; one whose ``RSPPAR`` is a direction-dependent detector model
(:func:`~svomflow.tasks.vhf.responses.response_model`) gets the count-ratio position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import InputDataError
from svomflow.instruments.coded_mask import MaskGeometry
from svomflow.instruments.pixels import PixelMap
from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.catalogue.instrument_codes import instrument_code
from svomflow.tasks.classification import ClassificationConfig
from svomflow.tasks.coded_mask.image_trigger import ImageTrigger, image_trigger
from svomflow.tasks.coded_mask.imaging import MaskModel
from svomflow.tasks.coded_mask.position import LocalisationConfig
from svomflow.tasks.coded_mask.quick_position import QuickPosition, quick_position
from svomflow.tasks.localisation.grm_ratio import GRMLocalisation, localise_grm
from svomflow.tasks.step import step
from svomflow.tasks.timing import net_counts, uniform_bins
from svomflow.tasks.vhf import fits_products as fp
from svomflow.tasks.vhf.config import CountRatioConfig, ImageTriggerConfig, QuickPositionConfig
from svomflow.tasks.vhf.curves import InstrumentTiming
from svomflow.tasks.vhf.previews import sky_image_figure
from svomflow.tasks.vhf.responses import response_model
from svomflow.tasks.vhf.timing import manual_background

__all__ = [
    "CountRatioResult",
    "QuickPositionResult",
    "count_ratio_position",
    "image_trigger_search",
    "quick_position_step",
]


def _pixels(data: InstrumentEvents) -> tuple[np.ndarray, np.ndarray]:
    ev = data.events
    if ev.pixel_y is None or ev.pixel_z is None or data.definition is None:
        raise InputDataError(f"{data.name}: no imaging data (no pixels or no mask definition)")
    return ev.pixel_y, ev.pixel_z


def _known_sources(cfg: ClassificationConfig) -> list[tuple[float, float]]:
    return [(s.ra_deg, s.dec_deg) for s in cfg.known_sources]


@step(name="image-trigger", config=ImageTriggerConfig, calibration=("BADPIX", "EBOUNDS"))
def image_trigger_search(
    data: InstrumentEvents, *, config: ImageTriggerConfig, calibration: CalibrationSet
) -> ImageTrigger | None:
    """Best image-trigger detection over the instrument's exposures (None: none above threshold).

    Sky images of every exposure of the definition's ``image_trigger`` section, known
    sources modelled, dead and noisy pixels (BADPIX) left out.
    """
    y, z = _pixels(data)
    defn = data.definition
    assert defn is not None
    if data.attitude is None:
        raise InputDataError(f"{data.name}: no pointing (RA_PNT/DEC_PNT) in the headers")
    bad: PixelMap = calibration.get(data.key, "BADPIX")
    ev = data.events
    model = MaskModel.from_geometry(MaskGeometry.from_instrument(defn))
    band = config.position_band_kev or tuple(defn.get("bands_kev.image_trigger"))
    known = []
    for ra, dec in _known_sources(config.classification):
        ty, tz = data.attitude.to_projected(ra, dec)
        if np.isfinite(ty) and np.isfinite(tz):
            known.append((float(ty), float(tz)))
    found = image_trigger(
        ev.time,
        y,
        z,
        ev.energy,
        model,
        t_start=float(ev.gti[0, 0]),
        t_stop=float(ev.gti[-1, 1]),
        exposures_s=[float(x) for x in defn.get("image_trigger.exposures_s")],
        band_kev=(float(band[0]), float(band[1])),
        threshold=float(defn.get("image_trigger.snr_threshold")),
        usable=~bad.bad,
        gti=ev.gti,
        known_sources=known,
    )
    return found[0] if found else None


@dataclass
class QuickPositionResult:
    """The coded-mask quick position (None with the reason in ``flags``) and QPO, QPOPLOT."""

    position: QuickPosition | None
    flags: list[str] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)


def _qpo_product(
    data: InstrumentEvents, qp: QuickPosition, flags: list[str], obs_id: str, previews: bool
) -> list[Product]:
    code = instrument_code(data.name)
    pos = qp.position
    row: list[fp.Column] = [
        ("RA", pos.ra_deg, "deg", "right ascension (J2000)"),
        ("DEC", pos.dec_deg, "deg", "declination (J2000)"),
        ("ERR_RAD", pos.r90_arcmin, "arcmin", "90 % error radius (systematic included)"),
        ("STAT_ERR", pos.stat_arcmin, "arcmin", "statistical term"),
        ("SYS_ERR", pos.sys_arcmin, "arcmin", "systematic term"),
        ("SNR", pos.snr, "sigma", "fit S/N"),
        ("IMAGE_SNR", pos.image_snr, "sigma", "sky-image peak S/N"),
        ("OFFAXIS", pos.off_axis_deg, "deg", "off-axis angle"),
        ("CODING", pos.coding, "", "partial coding fraction"),
        ("COUNTS", pos.counts, "count", "source counts in the interval"),
        ("TSTART", qp.interval[0], "s", "imaged interval start, from T0"),
        ("TSTOP", qp.interval[1], "s", "imaged interval stop, from T0"),
        ("N_NOISY", float(qp.noisy_pixels.sum()), "", "noisy pixels excluded"),
        ("N_DEAD", float(qp.dead_pixels.sum()), "", "dead pixels excluded"),
    ]
    hdus = fp.table_hdus(
        fp.ProductHeader.of(data),
        extname="POSITION",
        rows=[row],
        flags=flags,
        keywords=[("EMIN", qp.band_kev[0], "[keV]"), ("EMAX", qp.band_kev[1], "[keV]")],
    )
    files = tuple(data.files)
    out = [Product("QPO", code, FitsModel.from_hdus(hdus), inputs=files)]
    if previews:
        title = f"{obs_id} {code} sky image".strip()
        out.append(Product("QPOPLOT", code, sky_image_figure(data, qp, title=title), inputs=files))
    return out


@step(
    name="quick-position",
    config=QuickPositionConfig,
    calibration=("BADPIX", "EBOUNDS"),
    outputs=("QPO", "QPOPLOT"),
)
def quick_position_step(
    data: InstrumentEvents,
    timing: InstrumentTiming,
    obs_id: str,
    *,
    config: QuickPositionConfig,
    calibration: CalibrationSet,
) -> QuickPositionResult:
    """Coded-mask quick position (QPO) over the burst interval against the pre-burst background.

    The background interval is the last off-source interval of the timing's background fit
    before the burst (the first after it when there is none before).
    """
    y, z = _pixels(data)
    defn = data.definition
    assert defn is not None
    if data.attitude is None:
        return QuickPositionResult(None, ["no position: no pointing (RA_PNT/DEC_PNT)"])
    ev = data.events
    interval = timing.burst_interval
    ivs = timing.background_intervals
    before = [iv for iv in ivs if iv[1] <= interval[0]]
    bkg_iv = before[-1] if before else ivs[-1]
    try:
        qp = quick_position(
            ev.time,
            y,
            z,
            ev.energy,
            attitude=data.attitude,
            interval=interval,
            background_interval=bkg_iv,
            band_kev=config.position_band_kev,
            gti=ev.gti,
            bad_pixels=calibration.get(data.key, "BADPIX"),
            known_sources_radec=_known_sources(config.classification),
            config=config.localisation or LocalisationConfig.from_instrument(defn),
            instrument=defn,
        )
    except InputDataError as exc:
        return QuickPositionResult(None, [f"no position: {exc}"])
    flags = list(data.flags) + list(timing.flags)
    return QuickPositionResult(qp, [], _qpo_product(data, qp, flags, obs_id, config.previews))


@dataclass
class CountRatioResult:
    """The count-ratio position (None with the reason in ``flags``) and its QPO."""

    localisation: GRMLocalisation | None
    flags: list[str] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)


def _detector_net(
    data: InstrumentEvents,
    timing: InstrumentTiming,
    detectors: tuple[str, ...],
    config: CountRatioConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Net counts and their variances of each detector in the band over the burst interval."""
    ev = data.events
    band = config.grm_localisation.band_kev
    interval = timing.burst_interval
    missing = [n for n in detectors if n not in ev.detectors]
    if missing:
        raise InputDataError(f"{data.name}: no events of detector(s) {', '.join(missing)}")
    assert timing.curve.background is not None
    nets, vars_ = [], []
    for n in detectors:
        sel = (ev.detector == ev.detectors.index(n)) & ev.in_band(band[0], band[1])
        t = ev.time[sel]
        bk = manual_background(
            uniform_bins(t, timing.dt_s, ev.gti), timing.curve.background, config.background
        )
        nc = net_counts(t, ev.gti, bk, interval)
        nets.append(nc.net)
        vars_.append(nc.net_err**2)
    return np.array(nets), np.array(vars_)


@step(
    name="count-ratio-position",
    config=CountRatioConfig,
    calibration=("RSPPAR", "EBOUNDS"),
    outputs=("QPO",),
)
def count_ratio_position(
    data: InstrumentEvents,
    timing: InstrumentTiming,
    *,
    config: CountRatioConfig,
    calibration: CalibrationSet,
) -> CountRatioResult:
    """Coarse position (QPO) from the detectors' background-subtracted counts (RSPPAR model)."""
    model = response_model(calibration, data.key)
    if model is None:
        raise InputDataError(f"{data.name}: no direction-dependent response model (RSPPAR)")
    attitude = data.attitude
    if attitude is None:
        return CountRatioResult(None, ["no count-ratio position: no pointing (RA_PNT/DEC_PNT)"])
    try:
        net, var = _detector_net(data, timing, model.detectors, config)
        gl = localise_grm(
            net,
            var,
            attitude=attitude,
            model=model,
            config=config.grm_localisation,
            instrument=data.definition,
        )
    except InputDataError as exc:
        return CountRatioResult(None, [f"no count-ratio position: {exc}"])
    row: list[fp.Column] = [
        ("RA", gl.ra_deg, "deg", "right ascension (J2000)"),
        ("DEC", gl.dec_deg, "deg", "declination (J2000)"),
        ("ERR_RAD", gl.error_radius_90_deg, "deg", "90 % error radius (systematic incl.)"),
        ("ERR_1SIGMA", gl.error_radius_1sigma_deg, "deg", "1-sigma radius"),
        ("CHI2_MIN", gl.chi2_min, "", "chi-square at the best direction"),
    ]
    flags = list(data.flags) + list(timing.flags)
    hdus = fp.table_hdus(fp.ProductHeader.of(data), extname="POSITION", rows=[row], flags=flags)
    qpo = Product(
        "QPO", instrument_code(data.name), FitsModel.from_hdus(hdus), inputs=tuple(data.files)
    )
    return CountRatioResult(gl, [], [qpo])
