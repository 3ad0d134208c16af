"""ECLAIRs spectral response for a source position: effective area (ARF) and redistribution (RMF).

For a source at projected angles ``(tan_y, tan_z)`` the effective area of the detector plane is

    A(E) = QE(E) * A_pixel * cos(theta) * sum_pixels(shadow * usable)

with ``shadow`` the illuminated fraction of each pixel through the open mask elements
(:func:`svomflow.instruments.coded_mask.shadow`, the model the simulator and the imaging use),
``usable`` the pixels kept in the spectrum (dead and noisy pixels removed), ``cos(theta)`` the
projection of the pixel area and ``QE`` the detection efficiency of the CdTe (instrument file:
low-energy roll-off and high-energy transparency tables). The coding fraction of the source is
``sum(shadow * usable) / (open_fraction * n_usable)``, reported in the headers.

Redistribution: a Gaussian of ``FWHM^2 = noise^2 + c E`` (``c`` from the FWHM at 60 keV)
integrated over each PI channel; events measured below the low threshold or beyond the last
channel are not recorded (no overflow channel), so those probabilities are dropped, exactly as
the on-board electronics does. Each photon bin is averaged over ``n_sub`` log sub-energies.

The result is written as OGIP RMF + ARF (CAL/GEN/92-002) or as one RSP (``HDUCLAS3 = FULL``).
With ``weighting="none"`` it is the response of a spectrum extracted from the usable pixels
over the whole plane, whose background (sky + instrument, including other sources in the
field) is estimated from off-source time intervals.

With ``weighting="mask"`` it is the response of a mask-weighted spectrum
(:mod:`svomflow.tasks.coded_mask.mask_weighting`): the expected weighted counts per unit
photon flux are ``QE * A_pixel * cos(theta) * sum(w * shadow * usable)`` times the
redistribution. ``sum(w * shadow * usable)`` is the number of fully illuminated pixels the
weighted counts are equivalent to: the area of the equivalent fully illuminated source. The
weights are normalised so that it equals ``sum(shadow * usable)``, so both responses have
the same area and the weighted counts are the source counts the usable plane records; the
headers say which spectrum a response is for (``MASKWT``, ``WTNORM``, ``WTTEMPL``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from scipy.special import erf
from svomflow.config import InstrumentDefinition, load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.coded_mask import MaskGeometry, cos_theta, mask_pattern, shadow
from svomflow.instruments.eclairs_detector import EclairsDetectorModel
from svomflow.products.ogip import ebounds_hdu, primary_hdu, write_hdulist
from svomflow.tasks.coded_mask.mask_weighting import mask_weights

__all__ = [
    "EclairsDetectorModel",
    "EclairsSpectralResponse",
    "eclairs_arf_hdus",
    "eclairs_response",
    "eclairs_rmf_hdus",
    "eclairs_rsp_hdus",
    "write_eclairs_arf",
    "write_eclairs_rmf",
    "write_eclairs_rsp",
]


@dataclass
class EclairsSpectralResponse:
    """An ECLAIRs response: photon bins, ARF (cm2), RMF (probabilities) and channel bounds."""

    energ_lo: NDArray[np.float64]
    energ_hi: NDArray[np.float64]
    arf_cm2: NDArray[np.float64]
    rmf: NDArray[np.float64]
    e_min: NDArray[np.float64]
    e_max: NDArray[np.float64]
    tan_y: float
    tan_z: float
    off_axis_deg: float
    coding_fraction: float
    n_usable_pixels: int
    ra_deg: float | None = None
    dec_deg: float | None = None
    weighting: str = "none"
    weight_norm: float | None = None
    weight_templates: int = 0

    @property
    def matrix(self) -> NDArray[np.float64]:
        """Full response (cm2 per photon, n_energies x n_channels): ARF times RMF."""
        return self.arf_cm2[:, None] * self.rmf


def _redistribution(
    model: EclairsDetectorModel,
    energ_lo: NDArray[np.float64],
    energ_hi: NDArray[np.float64],
    n_sub: int,
) -> NDArray[np.float64]:
    edges = model.channel_edges()
    frac = (np.arange(n_sub) + 0.5) / n_sub
    le = np.log(energ_lo)[:, None] + np.log(energ_hi / energ_lo)[:, None] * frac[None, :]
    e = np.exp(le).ravel()
    sig = model.sigma_kev(e)[:, None]
    cdf = 0.5 * (1.0 + erf((edges[None, :] - e[:, None]) / (np.sqrt(2.0) * sig)))
    prob = np.diff(cdf, axis=1)
    # channels below the low threshold record nothing (the event is lost)
    prob[:, edges[1:] <= model.threshold_kev + 1e-9] = 0.0
    eff = model.efficiency(e)[:, None]
    # average efficiency x redistribution over the sub-energies; the ARF carries the
    # bin-averaged efficiency so that RMF rows stay probabilities
    both = (eff * prob).reshape(energ_lo.size, n_sub, -1).mean(axis=1)
    eff_bin = model.efficiency(e).reshape(energ_lo.size, n_sub).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rmf = np.where(
            eff_bin[:, None] > 0, both / np.where(eff_bin > 0, eff_bin, 1.0)[:, None], 0.0
        )
    return rmf


def eclairs_response(
    tan_y: float,
    tan_z: float,
    *,
    detector: EclairsDetectorModel,
    usable_pixels: NDArray[np.bool_] | None = None,
    photon_edges: NDArray[np.float64] | None = None,
    n_sub: int = 4,
    instrument: InstrumentDefinition | None = None,
    ra_dec: tuple[float, float] | None = None,
    weighting: Literal["none", "mask"] = "none",
) -> EclairsSpectralResponse:
    """Compute the ECLAIRs response for a source direction.

    Parameters
    ----------
    tan_y, tan_z
        Projected angles of the source in the instrument frame (``Attitude.to_projected``).
    detector
        The detector model: efficiency, resolution, channels (CALDB ``RSPPAR``).
    usable_pixels
        ``(npix_y, npix_z)`` boolean map of the pixels whose events are in the spectrum
        (default: all).
    photon_edges
        Photon-energy bin edges in keV (default: 320 log bins from 3 to 300 keV).
    n_sub
        Log sub-energies per photon bin for the efficiency and redistribution averages.
    instrument
        Instrument definition, for the mask geometry (default: the packaged ``eclairs``).
    ra_dec
        Sky position, recorded in the headers.
    weighting
        ``"none"``: counts of all usable pixels; ``"mask"``: mask-weighted counts with the
        weights of :func:`~svomflow.tasks.coded_mask.mask_weighting.mask_weights` (default
        flat + CXB templates), the area factor being ``sum(w * shadow * usable)``.

    Raises
    ------
    InputDataError
        When the source is outside the field (no pixel sees it through the mask), or no
        pixel is usable.
    """
    inst = instrument or load_instrument("eclairs")
    geom = MaskGeometry.from_instrument(inst)
    model = detector
    if not (np.isfinite(tan_y) and np.isfinite(tan_z)):
        raise InputDataError("ECLAIRs response: the source is behind the detector plane")
    usable = (
        np.ones(geom.shape, dtype=bool)
        if usable_pixels is None
        else np.asarray(usable_pixels, bool)
    )
    if usable.shape != geom.shape:
        raise InputDataError(f"usable pixel map must have shape {geom.shape}, got {usable.shape}")
    if weighting not in ("none", "mask"):
        raise InputDataError(
            f"ECLAIRs response: weighting must be 'none' or 'mask', not {weighting!r}"
        )
    pattern = mask_pattern(geom)
    sh = shadow(geom, pattern, float(tan_y), float(tan_z))
    lit = float(np.sum(sh * usable))
    n_usable = int(usable.sum())
    if lit <= 0 or n_usable == 0:
        raise InputDataError(
            f"ECLAIRs response: no usable pixel sees the source at tan=({tan_y:.3f}, {tan_z:.3f}) "
            "through the mask (outside the field of view)"
        )
    area_pixels = lit
    norm: float | None = None
    n_tpl = 0
    if weighting == "mask":
        mw = mask_weights(geom, pattern, float(tan_y), float(tan_z), usable=usable)
        area_pixels = norm = mw.norm
        n_tpl = mw.n_templates
    cos_t = float(cos_theta(tan_y, tan_z))
    pe = (
        np.geomspace(3.0, 300.0, 321)
        if photon_edges is None
        else np.asarray(photon_edges, dtype=np.float64)
    )
    lo, hi = pe[:-1], pe[1:]
    rmf = _redistribution(model, lo, hi, n_sub)
    frac = (np.arange(n_sub) + 0.5) / n_sub
    e_sub = np.exp(np.log(lo)[:, None] + np.log(hi / lo)[:, None] * frac[None, :])
    eff_bin = model.efficiency(e_sub).mean(axis=1)
    arf = eff_bin * geom.pixel_area_cm2 * cos_t * area_pixels
    edges = model.channel_edges()
    return EclairsSpectralResponse(
        energ_lo=lo.copy(),
        energ_hi=hi.copy(),
        arf_cm2=arf,
        rmf=rmf,
        e_min=edges[:-1].copy(),
        e_max=edges[1:].copy(),
        tan_y=float(tan_y),
        tan_z=float(tan_z),
        off_axis_deg=float(np.degrees(np.arccos(cos_t))),
        coding_fraction=lit / (geom.open_fraction * n_usable),
        n_usable_pixels=n_usable,
        ra_deg=None if ra_dec is None else float(ra_dec[0]),
        dec_deg=None if ra_dec is None else float(ra_dec[1]),
        weighting=weighting,
        weight_norm=norm,
        weight_templates=n_tpl,
    )


def _cards(
    resp: EclairsSpectralResponse, validity: tuple[float, float] | None
) -> list[tuple[str, Any, str]]:
    cards: list[tuple[str, Any, str]] = [
        ("TAN_Y", resp.tan_y, "source projected angle along Y"),
        ("TAN_Z", resp.tan_z, "source projected angle along Z"),
        ("OFFAXIS", resp.off_axis_deg, "source off-axis angle (deg)"),
        ("CODFRAC", resp.coding_fraction, "coding fraction on usable pixels"),
        ("NPIXUSE", resp.n_usable_pixels, "usable detector pixels"),
        ("MASKWT", resp.weighting == "mask", "response of a mask-weighted spectrum"),
    ]
    if resp.weight_norm is not None:
        cards += [
            ("WTNORM", resp.weight_norm, "sum(w*shadow*usable), lit pixel equivalents"),
            ("WTTEMPL", resp.weight_templates, "background templates the weights cancel"),
        ]
    if resp.ra_deg is not None:
        cards += [
            ("SRC_RA", resp.ra_deg, "source RA of the response (deg)"),
            ("SRC_DEC", resp.dec_deg, "source Dec of the response (deg)"),
        ]
    if validity is not None:
        cards += [
            ("TSTART", float(validity[0]), "start of validity (mission s)"),
            ("TSTOP", float(validity[1]), "end of validity (mission s)"),
        ]
    return cards


def _matrix_hdu(
    lo: NDArray[np.float64],
    hi: NDArray[np.float64],
    m: NDArray[np.float64],
    *,
    full: bool,
    inst: InstrumentDefinition,
    detector: str,
) -> fits.BinTableHDU:
    n_e, n_chan = m.shape
    # one group per row from the first to the last non-zero channel (compact, exact)
    nz = m > 0
    first = np.where(nz.any(axis=1), nz.argmax(axis=1), 0)
    last = np.where(nz.any(axis=1), n_chan - 1 - nz[:, ::-1].argmax(axis=1), 0)
    width = np.where(nz.any(axis=1), last - first + 1, 0)
    rows = [m[i, first[i] : first[i] + width[i]].astype(np.float32) for i in range(n_e)]
    cols = [
        fits.Column("ENERG_LO", "E", unit="keV", array=lo.astype(np.float32)),
        fits.Column("ENERG_HI", "E", unit="keV", array=hi.astype(np.float32)),
        fits.Column("N_GRP", "I", array=(width > 0).astype(np.int16)),
        fits.Column("F_CHAN", "1J", array=first.astype(np.int32)),
        fits.Column("N_CHAN", "1J", array=width.astype(np.int32)),
        fits.Column(
            "MATRIX",
            "PE()",
            unit="cm**2" if full else "",
            array=np.array(rows, dtype=object),
        ),
    ]
    hdu = fits.BinTableHDU.from_columns(cols, name="SPECRESP MATRIX" if full else "MATRIX")
    cards = [
        ("TELESCOP", inst.telescope, "mission"),
        ("INSTRUME", inst.instrument, "instrument"),
        ("DETNAM", detector, "whole detector plane"),
        ("FILTER", "NONE", ""),
        ("CHANTYPE", "PI", "channel type"),
        ("DETCHANS", n_chan, "number of channels"),
        ("LO_THRES", 0.0, "lower threshold of stored matrix values"),
        ("HDUCLASS", "OGIP", ""),
        ("HDUCLAS1", "RESPONSE", ""),
        ("HDUCLAS2", "RSP_MATRIX", ""),
        ("HDUCLAS3", "FULL" if full else "REDIST", ""),
        ("HDUVERS", "1.3.0", ""),
        ("TLMIN4", 0, "first channel number"),
        ("TLMAX4", n_chan - 1, "last channel number"),
    ]
    for k, v, c in cards:
        hdu.header[k] = (v, c)
    return hdu


def _with_ebounds(
    hdus: list[Any],
    resp: EclairsSpectralResponse,
    validity: tuple[float, float] | None,
    inst: InstrumentDefinition,
) -> list[Any]:
    for h in hdus:
        for k, v, c in _cards(resp, validity):
            h.header[k] = (v, c)
    eb = ebounds_hdu(resp.e_min, resp.e_max, telescope=inst.telescope, instrument=inst.instrument)
    prim = primary_hdu(telescope=inst.telescope, instrument=inst.instrument)
    return [prim, *hdus, eb]


def eclairs_rsp_hdus(
    resp: EclairsSpectralResponse,
    *,
    validity: tuple[float, float] | None = None,
    instrument: InstrumentDefinition | None = None,
    detector: str = "PLANE",
) -> list[Any]:
    """Build the full response (ARF x RMF) as OGIP RSP HDUs (``SPECRESP MATRIX`` + EBOUNDS).

    ``validity`` (mission seconds) is written as TSTART/TSTOP: the attitude-dependent response
    holds only over that span. ``detector`` is the plane's ``DETNAM``.
    """
    inst = instrument or load_instrument("eclairs")
    hdu = _matrix_hdu(
        resp.energ_lo, resp.energ_hi, resp.matrix, full=True, inst=inst, detector=detector
    )
    return _with_ebounds([hdu], resp, validity, inst)


def eclairs_rmf_hdus(
    resp: EclairsSpectralResponse,
    *,
    validity: tuple[float, float] | None = None,
    instrument: InstrumentDefinition | None = None,
    detector: str = "PLANE",
) -> list[Any]:
    """Build the redistribution matrix alone (``MATRIX``, ``HDUCLAS3 = REDIST``) + EBOUNDS."""
    inst = instrument or load_instrument("eclairs")
    hdu = _matrix_hdu(
        resp.energ_lo, resp.energ_hi, resp.rmf, full=False, inst=inst, detector=detector
    )
    return _with_ebounds([hdu], resp, validity, inst)


def eclairs_arf_hdus(
    resp: EclairsSpectralResponse,
    *,
    validity: tuple[float, float] | None = None,
    instrument: InstrumentDefinition | None = None,
) -> list[Any]:
    """Build the effective area as OGIP ARF HDUs (``SPECRESP`` extension, cm2)."""
    inst = instrument or load_instrument("eclairs")
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("ENERG_LO", "E", unit="keV", array=resp.energ_lo.astype(np.float32)),
            fits.Column("ENERG_HI", "E", unit="keV", array=resp.energ_hi.astype(np.float32)),
            fits.Column("SPECRESP", "E", unit="cm**2", array=resp.arf_cm2.astype(np.float32)),
        ],
        name="SPECRESP",
    )
    for k, v, c in [
        ("TELESCOP", inst.telescope, "mission"),
        ("INSTRUME", inst.instrument, "instrument"),
        ("HDUCLASS", "OGIP", ""),
        ("HDUCLAS1", "RESPONSE", ""),
        ("HDUCLAS2", "SPECRESP", ""),
        ("HDUVERS", "1.1.0", ""),
    ]:
        hdu.header[k] = (v, c)
    for k, v, c in _cards(resp, validity):
        hdu.header[k] = (v, c)
    prim = primary_hdu(telescope=inst.telescope, instrument=inst.instrument)
    return [prim, hdu]


def write_eclairs_rsp(
    path: str | Path,
    resp: EclairsSpectralResponse,
    *,
    validity: tuple[float, float] | None = None,
    instrument: InstrumentDefinition | None = None,
) -> Path:
    """Write :func:`eclairs_rsp_hdus` to an OGIP RSP file (notebooks, XSPEC users)."""
    return write_hdulist(eclairs_rsp_hdus(resp, validity=validity, instrument=instrument), path)


def write_eclairs_rmf(
    path: str | Path,
    resp: EclairsSpectralResponse,
    *,
    validity: tuple[float, float] | None = None,
    instrument: InstrumentDefinition | None = None,
) -> Path:
    """Write :func:`eclairs_rmf_hdus` to an OGIP RMF file."""
    return write_hdulist(eclairs_rmf_hdus(resp, validity=validity, instrument=instrument), path)


def write_eclairs_arf(
    path: str | Path,
    resp: EclairsSpectralResponse,
    *,
    validity: tuple[float, float] | None = None,
    instrument: InstrumentDefinition | None = None,
) -> Path:
    """Write :func:`eclairs_arf_hdus` to an OGIP ARF file."""
    return write_hdulist(eclairs_arf_hdus(resp, validity=validity, instrument=instrument), path)
