"""Image trigger: sky images over long exposures (20 s .. 20 min) to catch slow bursts.

A slow burst can stay below the count-rate trigger on every timescale and still stand out
in a sky image, where the background of the whole plane does not compete with it. For each
exposure, the events in the band are imaged over consecutive windows (half-overlapping);
the background is modelled by the templates (flat + CXB exposure) and known sources, so no
background interval is needed. A window whose highest valid S/N reaches the threshold is a
detection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from svomflow.errors import InputDataError
from svomflow.tasks.coded_mask.imaging import MaskModel, make_shadowgram, sky_image

__all__ = ["ImageTrigger", "image_trigger"]


@dataclass
class ImageTrigger:
    """An image-trigger detection: window, exposure, peak S/N and projected position."""

    t_start: float
    t_stop: float
    exposure_s: float
    snr: float
    tan_y: float
    tan_z: float


def image_trigger(
    time: NDArray[np.float64],
    y: NDArray[np.integer],
    z: NDArray[np.integer],
    energy_kev: NDArray[np.floating],
    model: MaskModel,
    *,
    t_start: float,
    t_stop: float,
    exposures_s: Sequence[float],
    band_kev: tuple[float, float],
    threshold: float,
    usable: NDArray[np.bool_] | None = None,
    gti: NDArray[np.float64] | None = None,
    known_sources: Sequence[tuple[float, float]] = (),
    min_coding: float = 0.05,
) -> list[ImageTrigger]:
    """Return the image-trigger detections, earliest window end first.

    Windows of each exposure start every half exposure from ``t_start``; windows with less
    than half their length of good time are skipped.
    """
    if not t_stop > t_start:
        raise InputDataError("image trigger: t_stop must be after t_start")
    found: list[ImageTrigger] = []
    for exp in exposures_s:
        if exp > t_stop - t_start:
            continue
        starts = t_start + 0.5 * exp * np.arange(
            int(np.floor((t_stop - t_start - exp) / (0.5 * exp))) + 1
        )
        for a in starts:
            b = float(a + exp)
            try:
                sg = make_shadowgram(
                    time,
                    y,
                    z,
                    energy_kev,
                    shape=model.geometry.shape,
                    band_kev=band_kev,
                    interval=(float(a), b),
                    gti=gti,
                    usable=usable,
                )
            except InputDataError:
                continue  # no good time in this window
            if sg.exposure_s < 0.5 * exp:
                continue
            img = sky_image(sg, model, known_sources=known_sources, min_coding=min_coding)
            i, j, snr = img.peak()
            if snr >= threshold:
                found.append(
                    ImageTrigger(
                        float(a),
                        b,
                        float(sg.exposure_s),
                        float(snr),
                        float(img.tan_y[i]),
                        float(img.tan_z[j]),
                    )
                )
    found.sort(key=lambda d: (d.t_stop, -d.snr))
    return found
