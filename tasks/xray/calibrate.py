"""MXT event calibration: gain/offset per column, CTI per pixel, pattern recombination and the
energy-dependent multiplicity correction, each from its CALDB file.

Order (reverse of what the detector does): PHA -> energy with the column's gain and offset;
CTI correction of each pixel's charge (the loss ``(1 - CTI(q))^(RAWY + 1)`` depends on the
charge and the number of transfers); pixels of one frame that touch are recombined into one
event with the summed energy and a pattern code; the sum is divided by the mean fraction of
charge recorded for that multiplicity at that energy (sub-threshold neighbours are lost).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from svomflow.errors import InputDataError
from svomflow.tasks.xray._kernels import recombine_frames
from svomflow.tasks.xray.psf import PSFModel

__all__ = [
    "CALIBRATION_CODES",
    "CalibratedEvents",
    "MXTCalibration",
    "calibrate_events",
    "load_calibration",
]

log = logging.getLogger(__name__)

#: requirement name -> CALDB code name of the files this module (and the fit) needs
CALIBRATION_CODES = {"gain": "GAIN", "cti": "CTI", "pattern": "PATTERN", "psf": "PSF"}

MAX_VALID_PATTERN = 12


@dataclass(frozen=True)
class MXTCalibration:
    """The calibration tables of one observation."""

    gain: NDArray[np.float64]
    offset: NDArray[np.float64]
    cti0: float
    cti_index: float
    pattern_energy: NDArray[np.float64]
    pattern_fraction: NDArray[np.float64]
    psf: PSFModel
    files: dict[str, str]


def _open(path: str | Path, ext: str) -> tuple[Any, fits.Header]:
    try:
        with fits.open(path) as hdul:
            if ext not in hdul:
                raise InputDataError(f"{path}: calibration file lacks the {ext} extension")
            return hdul[ext].data.copy(), hdul[ext].header.copy()
    except OSError as exc:
        raise InputDataError(f"{path}: cannot read calibration file ({exc})") from None


def load_calibration(files: dict[str, str | Path], npix_x: int) -> MXTCalibration:
    """Read the GAIN, CTI, PATTERN and PSF files (keys of :data:`CALIBRATION_CODES`)."""
    missing = sorted(set(CALIBRATION_CODES) - set(files))
    if missing:
        raise InputDataError(f"MXT calibration files missing: {', '.join(missing)}")
    g, _ = _open(files["gain"], "GAIN")
    gain = np.zeros(npix_x)
    offset = np.zeros(npix_x)
    col = np.asarray(g["RAWX"], dtype=np.int64)
    if col.min() < 0 or col.max() >= npix_x or np.unique(col).size != npix_x:
        raise InputDataError(
            f"{files['gain']}: GAIN table must have one row per column 0..{npix_x - 1}"
        )
    gain[col] = g["GAIN"]
    offset[col] = g["OFFSET"]
    _, ch = _open(files["cti"], "CTI")
    p, _ = _open(files["pattern"], "PATTERN")
    frac = np.vstack([np.asarray(p[f"FRAC{m}"], dtype=np.float64) for m in range(1, 5)])
    return MXTCalibration(
        gain=gain,
        offset=offset,
        cti0=float(ch["CTI0"]),
        cti_index=float(ch["CTI_IDX"]),
        pattern_energy=np.asarray(p["ENERGY"], dtype=np.float64),
        pattern_fraction=frac,
        psf=PSFModel.from_fits(files["psf"]),
        files={k: str(v) for k, v in files.items()},
    )


@dataclass
class CalibratedEvents:
    """One row per recombined X-ray event."""

    time: NDArray[np.float64]
    frame: NDArray[np.int64]
    rawx: NDArray[np.int64]
    rawy: NDArray[np.int64]
    energy_kev: NDArray[np.float64]
    pi: NDArray[np.int64]
    pattern: NDArray[np.int64]
    multiplicity: NDArray[np.int64]
    counts: dict[str, int]

    def select(self, mask: NDArray[np.bool_]) -> CalibratedEvents:
        """Return the events where ``mask`` is true (counts kept)."""
        return CalibratedEvents(
            self.time[mask], self.frame[mask], self.rawx[mask], self.rawy[mask],
            self.energy_kev[mask], self.pi[mask], self.pattern[mask], self.multiplicity[mask],
            dict(self.counts),
        )  # fmt: skip

    def __len__(self) -> int:
        return int(self.time.size)


def cti_correct(
    q_obs_kev: NDArray[np.float64], rawy: NDArray[np.int64], cti0: float, index: float
) -> NDArray[np.float64]:
    """Return the charge before transfer, solving q_obs = q (1 - cti0 q^index)^(rawy + 1)."""
    q = np.maximum(q_obs_kev, 1e-3)
    n = rawy.astype(np.float64) + 1.0
    for _ in range(4):  # fixed point: the loss is tiny, so this converges in a few steps
        q = q_obs_kev / (1.0 - cti0 * np.maximum(q, 1e-3) ** index) ** n
    return q


def calibrate_events(
    events: dict[str, NDArray[Any]],
    cal: MXTCalibration,
    *,
    channel_width_kev: float,
    n_channels: int,
    keep_invalid: bool = False,
) -> CalibratedEvents:
    """Calibrate merged pixel events into X-ray events with energies and patterns.

    Parameters
    ----------
    events
        Time-sorted pixel rows (TIME, FRAME, RAWX, RAWY, PHA) from :func:`merge_passes`.
    cal
        Calibration tables (:func:`load_calibration`).
    channel_width_kev, n_channels
        PI channel grid (``PI = floor(E / width)``, clipped to the last channel).
    keep_invalid
        Keep events with invalid patterns (code 13: pile-up, tracks); they are dropped and
        counted otherwise.
    """
    rawx = np.asarray(events["RAWX"], dtype=np.int64)
    rawy = np.asarray(events["RAWY"], dtype=np.int64)
    if rawx.size and (rawx.max() >= cal.gain.size or rawx.min() < 0):
        raise InputDataError("pixel events reference columns outside the GAIN table")
    e_pix = (np.asarray(events["PHA"], dtype=np.float64) - cal.offset[rawx]) * cal.gain[rawx] * 1e-3
    e_pix = cti_correct(e_pix, rawy, cal.cti0, cal.cti_index)
    frame = np.asarray(events["FRAME"], dtype=np.int64)
    order = np.argsort(frame, kind="stable")
    n = frame.size
    idx = np.empty(n, dtype=np.int64)
    esum = np.empty(n)
    pat = np.empty(n, dtype=np.int64)
    mult = np.empty(n, dtype=np.int64)
    ng = recombine_frames(
        frame[order],
        rawx[order],
        rawy[order],
        np.ascontiguousarray(e_pix[order]),
        idx,
        esum,
        pat,
        mult,
    )
    idx, esum, pat, mult = order[idx[:ng]], esum[:ng], pat[:ng], mult[:ng]
    # multiplicity correction: mean recorded fraction for this multiplicity and energy
    m = np.clip(mult, 1, cal.pattern_fraction.shape[0]) - 1
    frac = np.ones(ng)
    for k in range(cal.pattern_fraction.shape[0]):
        sel = m == k
        frac[sel] = np.interp(esum[sel], cal.pattern_energy, cal.pattern_fraction[k])
    energy = esum / np.where(frac > 0, frac, 1.0)
    pi = np.clip(np.floor(energy / channel_width_kev), 0, n_channels - 1).astype(np.int64)
    out = CalibratedEvents(
        time=np.asarray(events["TIME"], dtype=np.float64)[idx],
        frame=frame[idx],
        rawx=rawx[idx],
        rawy=rawy[idx],
        energy_kev=energy,
        pi=pi,
        pattern=pat,
        multiplicity=mult,
        counts={"n_pixel_rows": int(n), "n_events": int(ng)},
    )
    t_order = np.argsort(out.time, kind="stable")
    out = out.select(t_order)
    invalid = out.pattern > MAX_VALID_PATTERN
    out.counts["n_invalid_pattern"] = int(invalid.sum())
    if invalid.any():
        log.info(
            "calibrate: %d events with invalid patterns%s",
            int(invalid.sum()),
            "" if keep_invalid else " dropped",
        )
        if not keep_invalid:
            out = out.select(~invalid)
    out.counts["n_calibrated"] = len(out)
    return out
