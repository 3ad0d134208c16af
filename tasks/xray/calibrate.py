"""MXT event calibration: gain/offset, CTI, pattern recombination, multiplicity correction.

Each correction comes from its CALDB file (GAIN, CTI, PATTERN).

Order (reverse of what the detector does): PHA -> energy with the column's gain and offset;
CTI correction of each pixel's charge (the loss ``(1 - CTI(q))^(RAWY + 1)`` depends on the
charge and the number of transfers); pixels of one frame that touch are recombined into one
event with the summed energy and a pattern code; the sum is divided by the mean fraction of
charge recorded for that multiplicity at that energy (sub-threshold neighbours are lost).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from svomflow.errors import InputDataError
from svomflow.instruments.mxt_calibration import CTIModel, GainTable, PatternTable
from svomflow.tasks.xray._kernels import recombine_frames

__all__ = ["CalibratedEvents", "calibrate_events", "cti_correct"]

log = logging.getLogger(__name__)

MAX_VALID_PATTERN = 12


@dataclass
class CalibratedEvents:
    """One row per recombined X-ray event."""

    time: NDArray[np.float64]
    frame: NDArray[np.int64]
    rawx: NDArray[np.int64]
    rawy: NDArray[np.int64]
    energy_kev: NDArray[np.floating[Any]]
    pi: NDArray[np.int64]
    pattern: NDArray[np.int64]
    multiplicity: NDArray[np.int64]
    counts: dict[str, int]

    def select(self, index: NDArray[np.bool_] | NDArray[np.intp]) -> CalibratedEvents:
        """Return the events at ``index``: a mask, or positions (reordering); counts kept."""
        i = index
        return CalibratedEvents(
            self.time[i], self.frame[i], self.rawx[i], self.rawy[i], self.energy_kev[i],
            self.pi[i], self.pattern[i], self.multiplicity[i], dict(self.counts),
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
    gain: GainTable,
    cti: CTIModel,
    pattern: PatternTable,
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
    gain, cti, pattern
        The CALDB tables (``GAIN``, ``CTI``, ``PATTERN``).
    channel_width_kev, n_channels
        PI channel grid (``PI = floor(E / width)``, clipped to the last channel).
    keep_invalid
        Keep events with invalid patterns (code 13: pile-up, tracks); they are dropped and
        counted otherwise.
    """
    rawx = np.asarray(events["RAWX"], dtype=np.int64)
    rawy = np.asarray(events["RAWY"], dtype=np.int64)
    if rawx.size and (rawx.max() >= gain.n_columns or rawx.min() < 0):
        raise InputDataError("pixel events reference columns outside the GAIN table")
    e_pix = gain.energy_kev(events["PHA"], rawx)
    e_pix = cti_correct(e_pix, rawy, cti.cti0, cti.index)
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
    m = np.clip(mult, 1, pattern.fraction.shape[0]) - 1
    frac = np.ones(ng)
    for k in range(pattern.fraction.shape[0]):
        sel = m == k
        frac[sel] = np.interp(esum[sel], pattern.energy_kev, pattern.fraction[k])
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
