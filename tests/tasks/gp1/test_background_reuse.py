"""One background estimate per image: the photometry's is reused by the subtraction only when it applies."""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from svomflow.tasks.gp1.analysis import _background_subtracted
from svomflow.tasks.gp1.images import ImageResult, ImageSummary, ReducedImage
from svomflow.tasks.photometry.extract import ExtractConfig


def _result(data: np.ndarray) -> ImageResult:
    summary = ImageSummary(
        raw="a.fits", stem="a", sequence="s", trigger="t", instrument="i", filter="r",
        object="o", exptime=10.0, date_obs="2026-01-01T00:00:00", mjd_mid=61041.0,
        alert=True, gain=2.0, saturation=6e4, redlevel="full", bad_fraction=0.0,
    )  # fmt: skip
    return ImageResult(summary, ReducedImage(data, np.zeros(data.shape, bool), fits.Header()))


def test_background_is_reused_only_for_the_same_pixels_and_settings() -> None:
    rng = np.random.default_rng(3)
    _, xx = np.indices((256, 256))
    data = 100.0 + 0.05 * xx + rng.normal(0.0, 5.0, xx.shape)  # a sky gradient
    result = _result(data)
    cfg = ExtractConfig()
    first = _background_subtracted(result, cfg)
    # the gradient is removed and the noise map is the sky noise (5 ADU) plus Poisson
    assert abs(float(np.median(first.image))) < 1.0
    assert isinstance(first.rms_median, float) and 4.5 < first.rms_median < 5.5
    assert np.all(first.noise >= 4.0)
    later = ImageResult(result.summary, result.reduced, background=first)
    assert _background_subtracted(later, cfg) is first
    # other pixels (a new reduced image, even equal) or other settings: estimated again
    copy = ImageResult(
        result.summary, ReducedImage(data.copy(), result.reduced.mask, fits.Header()),
        background=first,
    )  # fmt: skip
    again = _background_subtracted(copy, cfg)
    assert again is not first and np.array_equal(again.image, first.image)
    coarse = _background_subtracted(later, ExtractConfig(back_size=128))
    assert coarse is not first and not np.array_equal(coarse.image, first.image)
