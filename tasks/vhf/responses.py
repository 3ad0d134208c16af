"""Detector responses of an instrument whose response model works for any direction (the GRM).

Which instruments get the count-ratio position, the RSP products and the quick spectrum is
read from the calibration, never from a name: an instrument whose ``RSPPAR`` is a model of
detectors with axes (:class:`~svomflow.instruments.grm_response.GRMResponseModel`) can have
each detector's response computed for a sky direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.grm_response import GRMResponseModel, grm_response
from svomflow.products.ogip_spectra import Response

__all__ = ["DetectorResponse", "response_for_direction", "response_model"]


def response_model(calibration: CalibrationSet, instrument: str) -> GRMResponseModel | None:
    """Return the instrument's direction-dependent response model (RSPPAR), if it has one."""
    model = calibration.optional(instrument, "RSPPAR")
    return model if isinstance(model, GRMResponseModel) else None


@dataclass
class DetectorResponse:
    """The response of one detector for the burst direction (photon bins x channels, cm2)."""

    detector: str
    e_lo: np.ndarray
    e_hi: np.ndarray
    matrix: np.ndarray
    ebounds: np.ndarray
    direction_radec: tuple[float, float]

    def as_response(self) -> Response:
        """Return the same response as the spectral fitter's :class:`Response`."""
        return Response(
            energ_lo=self.e_lo,
            energ_hi=self.e_hi,
            matrix=self.matrix,
            e_min=self.ebounds[:, 0],
            e_max=self.ebounds[:, 1],
            first_channel=0,
            path=Path(f"<{self.detector} response>"),
            has_area=True,
        )


def response_for_direction(
    model: GRMResponseModel, direction_radec: tuple[float, float], attitude: Attitude
) -> list[DetectorResponse]:
    """Compute each detector's response for a sky direction (the RSP products)."""
    out = []
    for det in model.detectors:
        lo, hi, m, eb = grm_response(direction_radec, detector=det, attitude=attitude, model=model)
        radec = (float(direction_radec[0]), float(direction_radec[1]))
        out.append(DetectorResponse(det, lo, hi, m, eb, radec))
    return out
