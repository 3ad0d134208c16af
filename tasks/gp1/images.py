"""What GP1 steps pass each other: an input image, and an image's results so far.

An :class:`ImageResult` is one image (or the stack of a sequence) with every result the
steps have added: the reduced image, the source catalogue, the PSF, the difference image
and its candidates, and the figures of :class:`ImageSummary` (what the old per-image JSON
state held, and what the ``IMGSUM`` product records). Steps never change a result in
place: each returns a new one (:func:`dataclasses.replace`).
"""

from __future__ import annotations

import datetime as _dt
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS, FITSFixedWarning
from svomflow.tasks.photometry.psf import PSFModel

__all__ = [
    "BackgroundSubtracted",
    "DifferenceImage",
    "ImageResult",
    "ImageSummary",
    "RawImage",
    "ReducedImage",
    "as_stored",
    "celestial_wcs",
    "header_as_stored",
    "mjd",
]


@dataclass
class RawImage:
    """An input image as read: pixels as stored and the merged header.

    ``reduced`` images (``REDLEVEL`` in the header: a reduced image given again, e.g. to
    run a later module) pass through the reduction with their mask.
    """

    path: str
    stem: str
    data: np.ndarray
    header: fits.Header
    mask: np.ndarray | None = None

    @property
    def reduced(self) -> bool:
        """Whether the image is already reduced."""
        return "REDLEVEL" in self.header


@dataclass
class ReducedImage:
    """A reduced image (electrons, or ADU when only overscan-corrected), mask and header."""

    data: np.ndarray
    mask: np.ndarray
    header: fits.Header
    calibration: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DifferenceImage:
    """An image minus its reference: difference, its noise, and the header (WCS, kernel)."""

    data: np.ndarray
    noise: np.ndarray
    header: fits.Header


@dataclass
class ImageSummary:
    """The figures of one image (or stack), JSON-ready: identity, then one group per module."""

    raw: str
    stem: str
    sequence: str
    trigger: str
    instrument: str
    filter: str
    object: str
    exptime: float
    date_obs: str
    mjd_mid: float
    alert: bool
    gain: float
    saturation: float
    redlevel: str
    bad_fraction: float
    calibration: list[dict[str, Any]] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """What a module found wrong with the pixels and worked around (one sentence each)."""
    # findstars
    n_sources: int | None = None
    back_level: float | None = None
    back_rms: float | None = None
    fwhm_sep: float | None = None
    # astrometry
    reference_catalog: str | None = None
    astrometry_n: int | None = None
    astrometry_rms_arcsec: float | None = None
    astrometry_shift_pix: list[float] | None = None
    astrometry_rotation_deg: float | None = None
    # photometry
    psf: dict[str, float] | None = None
    fwhm: float | None = None
    fwhm_arcsec: float | None = None
    psf_chi2: float | None = None
    psf_n: int | None = None
    back_rms_median: float | None = None
    maglim: float | None = None
    calibrated: bool | None = None
    zp: float | None = None
    zp_err: float | None = None
    zp_scatter: float | None = None
    zp_n: int | None = None
    zp_colour_term: float | None = None
    zp_points: dict[str, list[float]] | None = None
    # subtraction
    n_candidates: int | None = None
    n_rejected: int | None = None
    kernel_scale: float | None = None
    diff_psf: dict[str, float] | None = None
    diff_error_scale: float | None = None
    # a stack
    is_stack: bool = False
    n_inputs: int | None = None
    inputs: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as a JSON-ready mapping (NumPy scalars as Python numbers)."""
        return {k: _plain(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageSummary:
        """Read the figures back (from an ``IMGSUM`` product)."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class BackgroundSubtracted:
    """A reduced image minus its background, its per-pixel noise (ADU), and what made them.

    The source extraction's background makes it; the photometry and the subtraction reuse
    it (one background estimate per image); ``source`` and ``settings`` (the reduced pixels
    and the extraction settings it was computed from) let a step check that it still applies.
    """

    source: np.ndarray
    settings: Any
    image: np.ndarray
    noise: np.ndarray
    rms_median: float

    def applies_to(self, reduced: ReducedImage, settings: Any) -> bool:
        """Whether it was computed from these very pixels with these settings."""
        return self.source is reduced.data and self.settings == settings


@dataclass
class ImageResult:
    """One image (or a stack) and the results of the modules that ran on it."""

    summary: ImageSummary
    reduced: ReducedImage
    catalog: Table | None = None
    psf: PSFModel | None = None
    difference: DifferenceImage | None = None
    candidates: Table | None = None
    background: BackgroundSubtracted | None = None
    """The background-subtracted image of the extraction, reused by the photometry and the
    subtraction (which drops it)."""

    @property
    def done(self) -> list[str]:
        """Modules that ran, in order."""
        return self.summary.done


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def mjd(date_obs: str) -> float:
    """Return the modified Julian date of an ISO date (UTC when no zone is given)."""
    t = _dt.datetime.fromisoformat(str(date_obs).replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    epoch = _dt.datetime(1858, 11, 17, tzinfo=_dt.UTC)
    return (t - epoch).total_seconds() / 86400.0


def celestial_wcs(header: fits.Header) -> WCS | None:
    """Return the celestial WCS of a header, or None when it has none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        w = WCS(header)
    return w.celestial if w.has_celestial else None


def as_stored(table: Table) -> Table:
    """Return a table as a FITS binary table gives it back (column types, metadata).

    Steps hand catalogues to each other in memory; this keeps them exactly what a product
    file holds, so a module run on a published product and one run in the same pipeline
    see the same values.
    """
    hdu = fits.table_to_hdu(table)
    return Table.read(fits.HDUList([fits.PrimaryHDU(), hdu]), hdu=1)


def header_as_stored(header: fits.Header) -> fits.Header:
    """Return a header as a FITS file gives it back (values through their card text)."""
    return fits.Header.fromstring(header.tostring())
