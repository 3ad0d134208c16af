"""Alignment to a reference image: its source catalog becomes the astrometric reference."""

from __future__ import annotations

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS
from svomflow.errors import InputDataError
from svomflow.tasks.astrometry.solve import AstrometryConfig, AstrometrySolution, solve_astrometry

__all__ = ["align_to_reference_image", "reference_from_image_catalog"]


def reference_from_image_catalog(catalog: Table, *, min_snr: float = 10.0) -> Table:
    """Turn a reference image's extracted catalog (with sky positions) into a reference table.

    Only clean (``FLAGS`` without saturation/truncation) sources above ``min_snr`` are kept,
    with columns ``ra``, ``dec`` and ``mag`` (instrumental ``MAG_AUTO``).
    """
    ra = np.asarray(catalog["ALPHA_J2000"], float)
    dec = np.asarray(catalog["DELTA_J2000"], float)
    if not np.isfinite(ra).any():
        raise InputDataError("the reference image catalog has no sky positions (no WCS)")
    snr = np.asarray(catalog["FLUX_AUTO"], float) / np.maximum(
        np.asarray(catalog["FLUXERR_AUTO"], float), 1e-30
    )
    ok = np.isfinite(ra) & (snr >= min_snr) & ((np.asarray(catalog["FLAGS"]) & (4 | 8)) == 0)
    return Table({"ra": ra[ok], "dec": dec[ok], "mag": np.asarray(catalog["MAG_AUTO"], float)[ok]})


def align_to_reference_image(
    catalog: Table,
    reference_catalog: Table,
    wcs_guess: WCS,
    shape: tuple[int, int],
    config: AstrometryConfig | None = None,
) -> AstrometrySolution:
    """Solve the image WCS using the stars of an already-solved reference image."""
    ref = reference_from_image_catalog(reference_catalog)
    return solve_astrometry(catalog, ref, wcs_guess, shape, config, reference_mag="mag")
