"""Step ``responses``: the response matrices of the burst direction (RSP products).

Each instrument's response model comes from the CALDB (``RSPPAR``): a coded-mask plane
(:class:`~svomflow.instruments.eclairs_detector.EclairsDetectorModel`) gives one response of
the usable pixels for the source's projected angles
(:func:`~svomflow.tasks.coded_mask.response.eclairs_response`: the response of mask-weighted
spectra with ``weighting="mask"``, of whole-plane spectra with ``"none"``); a scintillator
array (:class:`~svomflow.instruments.grm_response.GRMResponseModel`) one response per
detector (:func:`~svomflow.instruments.grm_response.grm_response`). The direction is the
refined ECLAIRs position, else the GRM one. Each response is valid over its instrument's
data span (``TSTART``/``TSTOP``): the attitude holds over it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from astropy.io import fits
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import InputDataError
from svomflow.instruments.eclairs_detector import EclairsDetectorModel
from svomflow.instruments.grm_response import GRMResponseModel, grm_response
from svomflow.instruments.pixels import PixelMap
from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.catalogue import FitsModel, Product, link_name
from svomflow.products.catalogue.instrument_codes import detector_code
from svomflow.products.ogip import rsp_hdus
from svomflow.products.ogip_spectra import Response
from svomflow.tasks.coded_mask.response import (
    EclairsSpectralResponse,
    eclairs_response,
    eclairs_rsp_hdus,
)
from svomflow.tasks.step import step
from svomflow.tasks.xband.config import SpectralConfig
from svomflow.tasks.xband.datasets import single_precision_response
from svomflow.tasks.xband.localise import Positions

__all__ = ["InstrumentResponses", "Responses", "responses", "usable_pixels"]


@dataclass
class InstrumentResponses:
    """One instrument's responses, per detector name, as the RSP products hold them.

    ``code`` is each RSP product's instrument code, ``link`` the name the spectra write in
    ``RESPFILE`` (the publisher replaces it with the published file name); ``coded_mask`` is
    the full ECLAIRs response (coding fraction, weighting) of an imaging instrument.
    """

    instrument: str
    by_detector: dict[str, Response] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)
    link: dict[str, str] = field(default_factory=dict)
    coded_mask: EclairsSpectralResponse | None = None

    def summary(self, published: Mapping[str, str]) -> dict[str, Any]:
        """JSON-ready description; ``published`` maps RSP instrument codes to their files."""
        r = self.coded_mask
        if r is not None:
            code = next(iter(self.code.values()))
            rsp = {"rsp": published[code]} if code in published else {}
            return {
                **rsp,
                "coding_fraction": r.coding_fraction,
                "off_axis_deg": r.off_axis_deg,
                "weighting": r.weighting,
            }
        return {
            det: ({"rsp": published[c]} if c in published else {}) for det, c in self.code.items()
        }


@dataclass
class Responses:
    """The responses of every instrument for the burst direction."""

    direction: tuple[float, float]
    direction_source: str
    instruments: dict[str, InstrumentResponses] = field(default_factory=dict)
    products: list[Product] = field(default_factory=list)

    def summary(self, published: Mapping[str, str] | None = None) -> dict[str, Any]:
        """JSON-ready description: direction, then per instrument (with the RSP files)."""
        out: dict[str, Any] = {
            "direction": list(self.direction),
            "direction_source": self.direction_source,
        }
        out.update({n: r.summary(published or {}) for n, r in self.instruments.items()})
        return out


def usable_pixels(bad: PixelMap, excluded: np.ndarray | None) -> np.ndarray:
    """Pixels whose events the spectra keep: not bad in the CALDB, not excluded by the image."""
    usable = ~bad.bad
    if excluded is not None:
        usable &= ~np.asarray(excluded, dtype=bool)
    return np.asarray(usable)


def _validity(ev: InstrumentEvents) -> tuple[float, float]:
    gti = ev.events.gti
    return float(gti[0, 0] + ev.events.t0), float(gti[-1, 1] + ev.events.t0)


def _coded_mask(
    name: str,
    ev: InstrumentEvents,
    model: EclairsDetectorModel,
    usable: np.ndarray,
    direction: tuple[float, float],
    weighting: Literal["none", "mask"],
) -> tuple[InstrumentResponses, Product]:
    assert ev.attitude is not None
    ty, tz = ev.attitude.to_projected(*direction)
    resp = eclairs_response(
        float(ty),
        float(tz),
        detector=model,
        usable_pixels=usable,
        ra_dec=direction,
        instrument=ev.definition,
        weighting=weighting,
    )
    validity = _validity(ev)
    det = ev.events.detectors[0]
    code = detector_code(name, det, 1)
    link = link_name("RSP", code)
    rsp = single_precision_response(
        link, resp.energ_lo, resp.energ_hi, resp.matrix, resp.e_min, resp.e_max, validity=validity
    )
    hdus = eclairs_rsp_hdus(resp, validity=validity, instrument=ev.definition, detector=det)
    out = InstrumentResponses(name, {det: rsp}, {det: code}, {det: link}, coded_mask=resp)
    return out, Product("RSP", code, FitsModel.from_hdus(hdus))


def _rsp_hdus(
    lo: np.ndarray,
    hi: np.ndarray,
    m: np.ndarray,
    eb: np.ndarray,
    *,
    detector: str,
    ev: InstrumentEvents,
    direction: tuple[float, float],
    source: str,
) -> list[fits.PrimaryHDU | fits.BinTableHDU]:
    """Build the OGIP RSP of one detector, with its validity and the source of its direction."""
    assert ev.definition is not None
    validity = _validity(ev)
    return rsp_hdus(
        lo,
        hi,
        m,
        eb,
        telescope=ev.definition.telescope,
        instrument=ev.definition.instrument,
        detector=detector,
        direction_radec=direction,
        extra={"TSTART": validity[0], "TSTOP": validity[1], "DIRSRC": source},
    )


def _per_detector(
    name: str,
    ev: InstrumentEvents,
    model: GRMResponseModel,
    direction: tuple[float, float],
    source: str,
) -> tuple[InstrumentResponses, list[Product]]:
    detectors = ev.events.detectors
    out = InstrumentResponses(name)
    products = []
    for det in detectors:
        lo, hi, m, eb = grm_response(direction, detector=det, attitude=ev.attitude, model=model)
        code = detector_code(name, det, len(detectors))
        link = link_name("RSP", code)
        out.by_detector[det] = single_precision_response(
            link, lo, hi, m, eb[:, 0], eb[:, 1], validity=_validity(ev)
        )
        out.code[det] = code
        out.link[det] = link
        hdus = _rsp_hdus(lo, hi, m, eb, detector=det, ev=ev, direction=direction, source=source)
        products.append(Product("RSP", code, FitsModel.from_hdus(hdus)))
    return out, products


@step(name="responses", config=SpectralConfig, calibration=("RSPPAR", "BADPIX"), outputs=("RSP",))
def responses(
    instruments: Mapping[str, InstrumentEvents],
    positions: Positions,
    *,
    config: SpectralConfig,
    calibration: CalibrationSet,
) -> Responses:
    """Compute each instrument's response for the refined burst direction (RSP products).

    The ECLAIRs response is that of the spectra ``config.eclairs_method`` makes (mask
    weighted or whole plane), over the pixels the image kept.
    """
    direction, source = positions.direction
    out = Responses(direction=direction, direction_source=source)
    for name, ev in instruments.items():
        if ev.attitude is None:
            continue  # no pointing: no direction in the instrument frame
        model = calibration.get(name, "RSPPAR")
        if isinstance(model, GRMResponseModel):
            resp, products = _per_detector(name, ev, model, direction, source)
        elif isinstance(model, EclairsDetectorModel) and ev.imaging:
            usable = usable_pixels(
                calibration.get(name, "BADPIX"), positions.excluded_pixels.get(name)
            )
            resp, product = _coded_mask(
                name, ev, model, usable, direction, config.eclairs_weighting
            )
            products = [product]
        else:
            raise InputDataError(
                f"{name}: no response for a {type(model).__name__} model of "
                f"{'an imaging' if ev.imaging else 'a non-imaging'} instrument"
            )
        out.instruments[name] = resp
        out.products.extend(products)
    return out
