"""Reference images for subtraction: a solved image reprojected, or a catalog model.

When no deep reference image of the field exists yet (the usual case for a new alert),
the reference can be *rendered* from the local reference catalog: every catalog star drawn
with the image's fitted PSF at its WCS position and with the flux its catalog magnitude
and the image's zero point predict. The difference then holds whatever is not in the
catalog (the afterglow) plus photometric noise; the kernel fit absorbs small PSF and scale
errors.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS
from svomflow.errors import InputDataError
from svomflow.tasks.astrometry.solve import DEC_COLUMNS, RA_COLUMNS, reference_column
from svomflow.tasks.photometry.psf import PSFModel

__all__ = ["model_reference", "reproject_reference"]


def model_reference(
    shape: tuple[int, int],
    wcs: WCS,
    catalog: Table,
    mag_column: str,
    psf: PSFModel,
    zero_point: float,
    exptime: float,
    *,
    margin: int = 30,
    wing_tolerance: float = 20.0,
) -> np.ndarray:
    """Render the catalog stars (ADU, no sky) on the image grid with ``psf`` and ``zero_point``.

    ``zero_point`` is the magnitude of 1 ADU/s; stars up to ``margin`` pixels outside the
    image are drawn so that their wings are present at the edges.
    """
    ra = np.asarray(catalog[reference_column(catalog, RA_COLUMNS, "RA")], float)
    dec = np.asarray(catalog[reference_column(catalog, DEC_COLUMNS, "Dec")], float)
    mag = np.asarray(catalog[mag_column], float)
    x, y = wcs.world_to_pixel_values(ra, dec)
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    ok = (
        np.isfinite(x)
        & np.isfinite(mag)
        & (x > -margin)
        & (x < shape[1] + margin)
        & (y > -margin)
        & (y < shape[0] + margin)
    )
    if not ok.any():
        raise InputDataError("no reference catalog star falls on the image")
    flux = exptime * 10 ** (-0.4 * (mag[ok] - zero_point))
    # Faint stars need no far wings: draw each star out to the radius beyond which it loses
    # less than ``wing_tolerance`` (flux units) or 0.1 %, whichever is larger (at most 5 %).
    loss = np.clip(wing_tolerance / np.maximum(flux, 1e-30), 1e-3, 0.05)
    radii = np.array([psf.radius(float(v)) for v in loss])
    out = np.zeros(shape)
    for r in np.unique(radii):
        sel = radii == r
        psf.add_to(out, x[ok][sel], y[ok][sel], flux[sel], radius=int(r), nsub=3)
    return out


def reproject_reference(
    data: np.ndarray, wcs: WCS, target_wcs: WCS, shape: tuple[int, int]
) -> np.ndarray:
    """Reproject a reference image onto the science grid (NaN outside its footprint)."""
    from reproject import reproject_interp

    arr, foot = reproject_interp((data, wcs.celestial), target_wcs, shape_out=shape)
    return np.where(foot > 0.99, arr, np.nan)
