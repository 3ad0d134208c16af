"""The steps of the MXT pipeline: pure functions from data objects to data objects and products.

=================  ======================  =================  ==============================
step               calibration (CALDB)     outputs            takes -> returns
=================  ======================  =================  ==============================
merge              -                       -                  MXTInputs -> MergedEvents
calibrate          GAIN, CTI, PATTERN      EVT                MergedEvents -> CalibratedObservation
detect             PSF                     SRCLIST, QIMG      CalibratedObservation -> SourceList
response           -                       RMF                instrument -> RMF product
source-products    PSF                     ARF, SP, LC, QLC   one source -> SourceProducts
=================  ======================  =================  ==============================

No step reads or writes a file: the pipeline (:mod:`svomflow.tasks.xray.pipeline`) reads the
inputs once, the runner publishes the products through the catalogue. A spectrum names its
RMF and ARF with :func:`~svomflow.products.catalogue.link_name`, which the publisher turns
into their published file names (the plan publishes the RMF first).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config.base import CalibrationOverride, StepConfig
from svomflow.config.instrument import InstrumentDefinition
from svomflow.errors import InputDataError
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.mxt_calibration import CTIModel, GainTable, PatternTable, PSFModel
from svomflow.instruments.mxt_response import effective_area, resolution_sigma_kev
from svomflow.products.catalogue import Product, link_name
from svomflow.products.catalogue.mxt import source_code
from svomflow.tasks.step import step
from svomflow.tasks.xray.calibrate import calibrate_events
from svomflow.tasks.xray.detect import (
    DetectConfig,
    Detection,
    band_images,
    detect_field,
    sky_to_pixel,
)
from svomflow.tasks.xray.events import MergedEvents, merge_passes
from svomflow.tasks.xray.fits_products import (
    Card,
    arf_model,
    events_model,
    lightcurve_model,
    rmf_model,
    spectrum_model,
    srclist_model,
    time_reference,
)
from svomflow.tasks.xray.lightcurve import source_lightcurve
from svomflow.tasks.xray.observation import (
    CalibratedObservation,
    MXTInputs,
    SourceList,
    SourceProducts,
)
from svomflow.tasks.xray.preview import ImageSource, image_preview, lightcurve_preview

__all__ = [
    "EVENT_CALIBRATION",
    "RESPONSE_ENERGY_EDGES_KEV",
    "SOURCE_CALIBRATION",
    "CalibrateConfig",
    "MergeConfig",
    "SourceProductsConfig",
    "calibrate",
    "detect",
    "merge",
    "response",
    "source_products",
]

#: CALDB codes calibrated events depend on; products made from them record these too.
EVENT_CALIBRATION = ("GAIN", "CTI", "PATTERN")
#: ... and products that also depend on the fitted positions (the PSF).
SOURCE_CALIBRATION = (*EVENT_CALIBRATION, "PSF")

#: Energy grid (keV) of the RMF rows and the ARFs: 10 eV steps over the MXT band.
RESPONSE_ENERGY_EDGES_KEV = np.arange(0.2, 10.0 + 1e-9, 0.01)

# pointing and removed-row counts of the events, repeated in the source list's header
_SRCLIST_CARDS = ("RA_PNT", "DEC_PNT", "PA_PNT", "NBADROW", "NDUPLIC", "NNOATT", "NEARTH", "NSAA")

# the band of the source light curves (keV)
_LC_BAND_KEV = (0.3, 10.0)


class MergeConfig(StepConfig):
    """Merging of the passes (de-duplication, GTIs from attitude, Earth and SAA)."""

    max_pointing_spread_deg: float = Field(
        0.01,
        gt=0,
        description="Largest pointing drift during the GTIs (deg): imaging needs it fixed",
    )


class CalibrateConfig(StepConfig):
    """Event calibration: gain/offset, CTI, pattern recombination (CALDB GAIN, CTI, PATTERN)."""

    keep_invalid_patterns: bool = Field(
        False,
        description="Keep events of invalid pattern (pile-up, tracks) instead of dropping them",
    )
    override_gain: CalibrationOverride = Field(None, description="GAIN file instead of the CALDB's")
    override_cti: CalibrationOverride = Field(None, description="CTI file instead of the CALDB's")
    override_pattern: CalibrationOverride = Field(
        None, description="PATTERN file instead of the CALDB's"
    )


class SourceProductsConfig(StepConfig):
    """Per-source light curves, spectra with their responses, and previews."""

    enabled: bool = Field(
        True,
        description="Make the RMF and the per-source products (the Monte Carlo bench, which "
        "compares positions only, turns them off)",
    )
    lc_min_counts: int = Field(20, gt=0, description="Minimum counts per light-curve bin")
    extraction_radius_arcmin: float = Field(
        3.0, gt=0, description="Source extraction radius (arcmin)"
    )
    blocks_p0: float = Field(
        0.05, gt=0, lt=1, description="Bayesian-blocks false-positive rate per change point"
    )
    override_psf: CalibrationOverride = Field(
        None,
        description="PSF file instead of the CALDB's (one PSF per run: detect.override_psf "
        "must name the same file or be left empty)",
    )


# --------------------------------------------------------------------------- merge


@step(name="merge", config=MergeConfig)
def merge(inputs: MXTInputs, *, config: MergeConfig) -> MergedEvents:
    """Merge the passes into time-sorted pixel events inside the GTIs, with labelled gaps."""
    return merge_passes(
        inputs.passes,
        inputs.attitude,
        inputs.saa,
        max_pointing_spread_deg=config.max_pointing_spread_deg,
    )


# --------------------------------------------------------------------------- calibrate


@step(
    name="calibrate",
    config=CalibrateConfig,
    calibration=EVENT_CALIBRATION,
    outputs=("EVT",),
)
def calibrate(
    merged: MergedEvents,
    instrument: InstrumentDefinition,
    *,
    config: CalibrateConfig,
    calibration: CalibrationSet,
) -> CalibratedObservation:
    """Calibrate the merged pixel events (gain/offset, CTI, patterns) into X-ray events.

    Raises
    ------
    InputDataError
        If the GAIN table does not cover the CCD's columns.
    """
    name = instrument.name
    gain: GainTable = calibration.get(name, "GAIN")
    cti: CTIModel = calibration.get(name, "CTI")
    pattern: PatternTable = calibration.get(name, "PATTERN")
    n_columns = int(instrument.get("ccd.npix_x"))
    if gain.n_columns != n_columns:
        raise InputDataError(
            f"GAIN table has {gain.n_columns} columns; the {instrument.instrument} CCD has "
            f"{n_columns}"
        )
    ce = calibrate_events(
        merged.events, gain, cti, pattern,
        channel_width_kev=float(instrument.get("channels.channel_width_kev")),
        n_channels=int(instrument.get("channels.n_channels")),
        keep_invalid=config.keep_invalid_patterns,
    )  # fmt: skip
    # the EVT file stores float32 energies; downstream steps use the same values
    ce = replace(ce, energy_kev=ce.energy_kev.astype(np.float32))
    files = sorted(
        (key.partition(":")[2].lower(), path.name) for key, path in calibration.paths().items()
    )
    model = events_model(ce, merged, instrument, files)
    evt = Product("EVT", instrument.instrument, model, calibration=EVENT_CALIBRATION)
    return CalibratedObservation(ce, merged, instrument, [evt])


# --------------------------------------------------------------------------- detect


def _psf_cards(det: Detection, pixel_scale_arcsec: float, config: DetectConfig) -> list[Card]:
    """Return the SRCLIST cards of the PSF self-calibration and of the arm rule."""
    est = det.psf
    p = est.psf.to_arcmin(pixel_scale_arcsec)
    return [
        ("PSFCALIB", est.accepted, "PSF shape fitted on the field's bright sources"),
        ("PSFNSRC", est.n_sources, "bright sources in the PSF shape fit"),
        ("PSFDELC", round(est.delta_c, 2), "C(CALDB shape) - C(fitted shape)"),
        ("PSFCFWHM", round(p["core_fwhm_arcmin"], 4), "[arcmin] core FWHM of the PSF used"),
        ("PSFARMLN", round(p["arm_length_arcmin"], 4), "[arcmin] arm length of the PSF used"),
        ("PSFCFRAC", round(p["core_fraction"], 4), "core fraction of the PSF used"),
        ("PSFAFRAC", round(p["arm_fraction"], 4), "arm fraction of the PSF used"),
        ("ARMRULE", config.arm_candidates, "sources on a brighter source's arm"),
        ("NARMSRC", det.n_arm, "sources explained by a brighter source's arm"),
    ]


@step(name="detect", config=DetectConfig, calibration=("PSF",), outputs=("SRCLIST", "QIMG"))
def detect(
    observation: CalibratedObservation,
    prior_radec: tuple[float, float] | None,
    *,
    config: DetectConfig,
    calibration: CalibrationSet,
) -> SourceList:
    """Detect and fit the sources (candidates, joint ML fit, residual search): SRCLIST, QIMG.

    ``prior_radec`` (burst mode: the ECLAIRs position) adds a candidate there when stage 1
    found none nearby, so a faint afterglow always gets a likelihood.
    """
    inst = observation.instrument
    ev = observation.events
    psf: PSFModel = calibration.get(inst.name, "PSF")
    shape = observation.shape
    scale = observation.pixel_scale_arcsec
    bands = [(float(lo), float(hi)) for lo, hi in inst.get("bands_kev.detection")]
    rawx, rawy = ev.rawx.astype(np.int64), ev.rawy.astype(np.int64)
    images = band_images(rawx, rawy, ev.energy_kev, bands, shape)
    merged = observation.merged
    attitude = Attitude(*merged.attitude)
    exposure = observation.exposure_s
    prior_xy = None
    if prior_radec is not None:
        px, py = sky_to_pixel(prior_radec[0], prior_radec[1], attitude, scale, shape)
        prior_xy = (float(px), float(py))
    det = detect_field(
        images, psf, attitude, pixel_scale_arcsec=scale, exposure_s=exposure, cfg=config,
        prior_xy=prior_xy,
    )  # fmt: skip
    found, candidates = det.sources, det.candidates
    have = {c[0]: c for c in merged.header_cards()}
    cards = [have[k] for k in _SRCLIST_CARDS]
    cards.append(("NINVPAT", ev.counts["n_invalid_pattern"], "events dropped: invalid pattern"))
    cards.extend(_psf_cards(det, scale, config))
    model = srclist_model(
        found, inst, bands_kev=bands, exposure_s=exposure, n_candidates=len(candidates),
        ml_threshold=config.ml_threshold, prior=prior_radec is not None, cards=cards,
    )  # fmt: skip
    table = model.table("SRCLIST")
    # the preview draws the published positions and radii (float32), like a re-run would
    ny, nx = shape
    image = np.bincount(rawy * nx + rawx, minlength=ny * nx).reshape(shape)
    circles = [
        ImageSource(float(x), float(y), float(r), f"S{k}")
        for k, (x, y, r) in enumerate(
            zip(table.column("X"), table.column("Y"), table.column("RADEC_ERR90"), strict=True),
            start=1,
        )
    ]
    products = [
        Product("SRCLIST", inst.instrument, model, calibration=SOURCE_CALIBRATION),
        Product("QIMG", inst.instrument, image_preview(image, circles, pixel_scale_arcsec=scale),
                calibration=SOURCE_CALIBRATION),
    ]  # fmt: skip
    return SourceList(found, table, len(candidates), products, psf=det.psf.psf)


# --------------------------------------------------------------------------- products


@step(name="response", config=SourceProductsConfig, outputs=("RMF",))
def response(instrument: InstrumentDefinition, *, config: SourceProductsConfig) -> Product:
    """Return the RMF: the CCD resolution (instrument definition) on the PI channel grid."""
    edges = RESPONSE_ENERGY_EDGES_KEV

    def sigma(e: NDArray[np.float64]) -> NDArray[np.float64]:
        return resolution_sigma_kev(e, instrument)

    model = rmf_model(edges[:-1], edges[1:], sigma, instrument)
    return Product("RMF", instrument.instrument, model)


_SOURCE_OUTPUTS = ("ARF", "PHA", "LC", "LC-PREVIEW")


@step(
    name="source-products",
    config=SourceProductsConfig,
    calibration=("PSF",),
    outputs=_SOURCE_OUTPUTS,
)
def source_products(
    observation: CalibratedObservation,
    sources: SourceList,
    index: int,
    trigger_time: float | None,
    *,
    config: SourceProductsConfig,
    calibration: CalibrationSet,
) -> SourceProducts:
    """Make source ``index``'s (1-based) light curve, spectrum, ARF and light-curve preview.

    Events within the extraction radius of the source are its region; the background expected
    in the region is the rate of events further than twice the radius from every source,
    scaled by area. Rates are corrected for the PSF fraction in the circle, and so is the ARF.
    """
    inst = observation.instrument
    ev = observation.events
    gti = observation.gti
    # the PSF the positions were fitted with (self-calibrated, or the CALDB's)
    psf: PSFModel = sources.psf or calibration.get(inst.name, "PSF")
    scale = observation.pixel_scale_arcsec
    ny, nx = observation.shape
    radius = config.extraction_radius_arcmin * 60.0 / scale
    frac = psf.fraction_in_circle(radius)
    exposure = observation.exposure_s
    x = ev.rawx + 0.5
    y = ev.rawy + 0.5
    tab = sources.table
    sx, sy = tab.column("X"), tab.column("Y")
    ra, dec = tab.column("RA"), tab.column("DEC")
    k = index - 1
    inr = (x - sx[k]) ** 2 + (y - sy[k]) ** 2 <= radius**2
    far = np.ones(x.size, bool)
    for x2, y2 in zip(sx, sy, strict=True):
        far &= (x - x2) ** 2 + (y - y2) ** 2 > (2 * radius) ** 2
    n_far_area = ny * nx - len(sx) * math.pi * (2 * radius) ** 2
    bkg_rate = float(far.sum()) / max(n_far_area, 1.0) * math.pi * radius**2 / max(exposure, 1e-9)
    lc = source_lightcurve(
        ev.time, inr, gti, psf_fraction=frac, background_rate=bkg_rate,
        timeref=time_reference(inst), min_counts=config.lc_min_counts, band_kev=_LC_BAND_KEV,
        p0=config.blocks_p0,
    )  # fmt: skip
    edges = RESPONSE_ENERGY_EDGES_KEV
    e_lo, e_hi = edges[:-1], edges[1:]
    code = source_code(index)
    arf = arf_model(e_lo, e_hi, effective_area(0.5 * (e_lo + e_hi), inst), frac, inst)
    pha = spectrum_model(ev.pi, inr, exposure, gti, inst, respfile=link_name("RMF", inst.instrument),
                         ancrfile=link_name("ARF", code))  # fmt: skip
    lc_model = lightcurve_model(lc, gti, inst, ra_deg=float(ra[k]), dec_deg=float(dec[k]))
    b = lc.binned
    t0 = trigger_time if trigger_time is not None else float(gti[0, 0])
    preview = lightcurve_preview(
        b.time, b.time + b.timedel, b.rate, b.error, observation.gaps, t0=t0,
        blocks=(lc.blocks_lo, lc.blocks_hi, lc.blocks_rate),
        title=f"MXT source {index} ({_LC_BAND_KEV[0]}-{_LC_BAND_KEV[1]:g} keV)",
    )  # fmt: skip
    # the ARF before the spectrum: the publisher links ANCRFILE to names already published
    products = [
        Product("ARF", code, arf),
        Product("PHA", code, pha, calibration=SOURCE_CALIBRATION),
        Product("LC", code, lc_model, calibration=SOURCE_CALIBRATION),
        Product("LC-PREVIEW", code, preview, calibration=SOURCE_CALIBRATION),
    ]
    return SourceProducts(index, lc, int(inr.sum()), products)
