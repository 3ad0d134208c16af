"""MXT per-source light curves and spectra: extraction circle, PSF-fraction correction, binning.

Binning reuses :mod:`svomflow.tasks.timing` (constant-S/N / minimum-count bins restarted at
every GTI, so gaps are never bridged; Bayesian blocks per GTI). Rates are corrected for the
fraction of the PSF inside the extraction circle and for the expected background counts
(fitted background per pixel x circle area), with Poisson errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from svomflow.products.ogip import LightCurve, TimeReference, ebounds_hdu, pha_type1_hdu
from svomflow.tasks.timing.binning import constant_sn_bins
from svomflow.tasks.timing.blocks import BayesianBlocksConfig, blocks_from_events

__all__ = ["SourceLightCurve", "arf_hdu", "rmf_hdu", "source_lightcurve", "source_spectrum"]


@dataclass
class SourceLightCurve:
    """Binned and Bayesian-block light curves of one source (rates corrected for the PSF)."""

    binned: LightCurve
    counts: NDArray[np.float64]
    blocks_lo: NDArray[np.float64]
    blocks_hi: NDArray[np.float64]
    blocks_rate: NDArray[np.float64]
    psf_fraction: float


def source_lightcurve(
    time: NDArray[np.float64],
    in_region: NDArray[np.bool_],
    gti: NDArray[np.float64],
    *,
    psf_fraction: float,
    background_rate: float,
    timeref: TimeReference,
    min_counts: int = 20,
    band_kev: tuple[float, float] | None = None,
    p0: float = 0.05,
) -> SourceLightCurve:
    """Return the light curve of the events in a source's extraction region.

    ``background_rate`` is the expected background in the region (counts/s); the rate is
    ``(n - b dt) / (dt psf_fraction)`` with error ``sqrt(n) / (dt psf_fraction)``.
    """
    t = np.sort(np.asarray(time, dtype=np.float64)[in_region])
    bins = constant_sn_bins(t, gti, min_counts=min_counts)
    dt = bins.exposure
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(dt > 0, (bins.counts - background_rate * dt) / (dt * psf_fraction), 0.0)
        err = np.where(dt > 0, np.sqrt(np.maximum(bins.counts, 1.0)) / (dt * psf_fraction), 0.0)
    lc = LightCurve(
        time=bins.lo, timedel=bins.width, rate=rate, error=err,
        fracexp=np.where(bins.width > 0, dt / np.maximum(bins.width, 1e-12), 0.0),
        gti=gti, timeref=timeref, band_kev=band_kev,
        header={"PSFFRAC": psf_fraction, "BKGRATE": background_rate},
    )  # fmt: skip
    # Bayesian blocks per GTI: a block never spans a gap
    edges, brate = [], []
    cfg = BayesianBlocksConfig(p0=p0)
    for a, b in gti:
        sel = t[(t >= a) & (t < b)]
        if sel.size < 2:
            continue
        if np.ptp(sel) == 0:  # every event at one time (duplicated time tags): one block
            edges.append(np.array([a, b]))
            brate.append(
                np.array([(sel.size - background_rate * (b - a)) / ((b - a) * psf_fraction)])
            )
            continue
        blk = blocks_from_events(sel, cfg)
        e = blk.edges.copy()
        e[0], e[-1] = a, b
        w = np.diff(e)
        edges.append(e)
        brate.append((blk.counts - background_rate * w) / (w * psf_fraction))
    lo = np.concatenate([e[:-1] for e in edges]) if edges else np.zeros(0)
    hi = np.concatenate([e[1:] for e in edges]) if edges else np.zeros(0)
    br = np.concatenate(brate) if brate else np.zeros(0)
    return SourceLightCurve(lc, bins.counts.astype(float), lo, hi, br, psf_fraction)


def source_spectrum(
    pi: NDArray[np.int64],
    in_region: NDArray[np.bool_],
    n_channels: int,
    exposure: float,
    *,
    telescope: str,
    instrument: str,
    respfile: str,
    ancrfile: str,
    timeref: TimeReference,
    tstart: float,
    tstop: float,
) -> fits.BinTableHDU:
    """Return the PHA type I spectrum of the events in the region."""
    counts = np.bincount(np.asarray(pi)[in_region], minlength=n_channels)[:n_channels]
    return pha_type1_hdu(
        counts, exposure=exposure, telescope=telescope, instrument=instrument, respfile=respfile,
        ancrfile=ancrfile, timeref=timeref, tstart=tstart, tstop=tstop,
    )  # fmt: skip


def rmf_hdu(
    e_lo: NDArray[np.float64],
    e_hi: NDArray[np.float64],
    n_channels: int,
    channel_width: float,
    sigma_fn: object,
    *,
    telescope: str,
    instrument: str,
) -> list[fits.BinTableHDU]:
    """Return (MATRIX, EBOUNDS) of a Gaussian-redistribution RMF (one group per energy row)."""
    ch_lo = np.arange(n_channels) * channel_width
    ch_hi = ch_lo + channel_width
    from scipy.special import ndtr

    ec = 0.5 * (e_lo + e_hi)
    sig = np.asarray(sigma_fn(ec), dtype=np.float64)  # type: ignore[operator]
    rows = ndtr((ch_hi[None, :] - ec[:, None]) / sig[:, None]) - ndtr(
        (ch_lo[None, :] - ec[:, None]) / sig[:, None]
    )
    rows = rows.astype(np.float32)
    first = np.argmax(rows > 1e-6, axis=1)
    last = n_channels - np.argmax(rows[:, ::-1] > 1e-6, axis=1)
    nch = np.maximum(last - first, 1)
    width = int(nch.max())
    mat = np.zeros((len(ec), width), dtype=np.float32)
    for k in range(len(ec)):
        mat[k, : nch[k]] = rows[k, first[k] : first[k] + nch[k]]
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("ENERG_LO", "E", unit="keV", array=e_lo.astype(np.float32)),
            fits.Column("ENERG_HI", "E", unit="keV", array=e_hi.astype(np.float32)),
            fits.Column("N_GRP", "I", array=np.ones(len(ec), dtype=np.int16)),
            fits.Column("F_CHAN", "J", array=first.astype(np.int32)),
            fits.Column("N_CHAN", "J", array=nch.astype(np.int32)),
            fits.Column("MATRIX", f"{width}E", array=mat),
        ],
        name="MATRIX",
    )
    cards: list[tuple[str, Any]] = [
        ("TELESCOP", telescope), ("INSTRUME", instrument), ("HDUCLASS", "OGIP"),
        ("HDUCLAS1", "RESPONSE"), ("HDUCLAS2", "RSP_MATRIX"), ("HDUVERS", "1.3.0"),
        ("CHANTYPE", "PI"), ("DETCHANS", n_channels), ("TLMIN4", 0),
    ]  # fmt: skip
    for key, value in cards:
        hdu.header[key] = value
    return [hdu, ebounds_hdu(ch_lo, ch_hi, telescope=telescope, instrument=instrument)]


def arf_hdu(
    e_lo: NDArray[np.float64],
    e_hi: NDArray[np.float64],
    area: NDArray[np.float64],
    *,
    telescope: str,
    instrument: str,
    psf_fraction: float,
) -> fits.BinTableHDU:
    """Return a SPECRESP extension: effective area x PSF fraction in the extraction region."""
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("ENERG_LO", "E", unit="keV", array=e_lo.astype(np.float32)),
            fits.Column("ENERG_HI", "E", unit="keV", array=e_hi.astype(np.float32)),
            fits.Column(
                "SPECRESP", "E", unit="cm**2", array=(area * psf_fraction).astype(np.float32)
            ),
        ],
        name="SPECRESP",
    )
    for k, v in [("TELESCOP", telescope), ("INSTRUME", instrument), ("HDUCLASS", "OGIP"),
                 ("HDUCLAS1", "RESPONSE"), ("HDUCLAS2", "SPECRESP"), ("HDUVERS", "1.1.0"),
                 ("PSFFRAC", psf_fraction)]:  # fmt: skip
        hdu.header[k] = v
    return hdu
