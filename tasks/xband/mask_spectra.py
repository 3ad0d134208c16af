"""Mask-weighted ECLAIRs spectra: extraction from events, S/N grouping and the PHA files.

The source spectrum of an interval is the sum of the events' mask weights per PI channel
(:mod:`svomflow.tasks.coded_mask.mask_weighting`: balanced weights for the burst position,
cancelling a flat and a CXB-shaped background), with the variance ``sum(w^2)`` per channel.
It is background-subtracted by construction, so it needs no off-source interval and has no
background file; it is fitted with chi-square through the mask-weighted response
(:func:`svomflow.tasks.coded_mask.response.eclairs_response` with ``weighting="mask"``).

File (OGIP PHA type I for one interval, type II for several): ``COUNTS`` as floats (weighted
counts) with ``STAT_ERR`` (``sqrt(sum w^2)``), ``POISSERR = F``, ``BACKFILE = none``,
``HDUCLAS2 = NET``, ``MASKWT = T`` with the weights' normalisation (``WTNORM``) and the
source's coding fraction (``CODFRAC``).

Variance written (``STAT_ERR``): chi-square with the variance taken from the data biases a
fit, because a group's variance ``sum(w^2)`` grows with its weighted counts (the source's
events have positive weights, and the balanced weights of a 40 % open mask are skewed); a
group fluctuating low gets a small error and pulls the model down, most where the groups
hold few counts (high energies, so the peak energy comes out low: -5 % for a CPL of
Epeak = 100 keV in the Monte Carlo). As Churazov et al. (1996, ApJ 471, 673) do for Poisson
counts, the variance of each channel is replaced by its average over neighbouring channels
within ``+-rel_width * E`` (at least ``min_half_channels`` on each side): the expected
variance varies smoothly with energy (everything is seen through the energy resolution), so
the average keeps its expectation and is nearly independent of the group's own counts.
``sum(w^2)`` per channel is kept in the file as ``RAW_VAR``.

Grouping: consecutive good channels are grouped until a group reaches ``min_snr`` (weighted
counts over their error) and ``min_channels``; chi-square needs roughly Gaussian groups, which
a per-group S/N of a few gives (the weighted counts of a group are a sum of many events).
Channels below the low threshold get ``QUALITY = 5``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from svomflow.errors import InputDataError
from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.ogip import TimeReference
from svomflow.tasks.coded_mask.mask_weighting import MaskWeights, event_weights, weighted_spectrum
from svomflow.tasks.xband.selection import channel_bounds, source_file
from svomflow.tasks.xband.spectra import (
    _intersect,
    _live,
    interval_pha_hdu,
    low_threshold_quality,
)

__all__ = [
    "WeightedSpectrum",
    "extract_weighted_spectrum",
    "group_min_snr",
    "smooth_variance",
    "weighted_spectra_hdu",
]

Interval = tuple[float, float]


@dataclass
class WeightedSpectrum:
    """Mask-weighted counts and their variance per channel for one interval."""

    instrument: str
    detector: str
    interval: Interval
    counts: NDArray[np.float64]
    variance: NDArray[np.float64]
    raw_variance: NDArray[np.float64]
    exposure: float
    n_events: int
    grouping: NDArray[np.int16]
    quality: NDArray[np.int16]
    first_channel: int
    weight_norm: float
    coding_fraction: float
    smooth_rel_width: float | None = None

    @property
    def net_counts(self) -> float:
        """Weighted (background-subtracted) counts over all channels."""
        return float(self.counts.sum())

    @property
    def snr(self) -> float:
        """Net counts over their error, all channels."""
        v = float(self.variance.sum())
        return self.net_counts / np.sqrt(v) if v > 0 else 0.0


def smooth_variance(
    variance: NDArray[np.float64],
    quality: NDArray[np.int16],
    energy_kev: NDArray[np.float64],
    *,
    rel_width: float = 0.1,
    min_half_channels: int = 3,
) -> NDArray[np.float64]:
    """Average the variance of each good channel over good channels within ``+-rel_width * E``.

    ``energy_kev`` are the channel centres (increasing). The window is symmetric about the
    channel (so a linear trend is kept exactly) and shrinks near a bad-quality channel or the
    end of the spectrum rather than becoming one-sided. Bad-quality channels keep their
    variance and do not enter the averages.
    """
    var = np.asarray(variance, dtype=np.float64)
    good = np.asarray(quality) == 0
    e = np.asarray(energy_kev, dtype=np.float64)
    n = var.size
    idx = np.arange(n)
    left = idx - np.searchsorted(e, e * (1.0 - rel_width), side="left")
    right = np.searchsorted(e, e * (1.0 + rel_width), side="right") - 1 - idx
    half = np.maximum((left + right) // 2, min_half_channels)
    # room to the nearest bad channel (or the end) on each side
    bad = np.flatnonzero(~good)
    prev_bad = np.concatenate([[-1], bad])[np.searchsorted(bad, idx, side="right")]
    next_bad = np.concatenate([bad, [n]])[np.searchsorted(bad, idx, side="left")]
    half = np.minimum(half, np.minimum(idx - prev_bad - 1, next_bad - idx - 1)).clip(0)
    cv = np.concatenate([[0.0], np.cumsum(np.where(good, var, 0.0))])
    out = var.copy()
    lo, hi = idx - half, idx + half + 1
    out[good] = ((cv[hi] - cv[lo]) / (hi - lo))[good]
    return out


def group_min_snr(
    counts: NDArray[np.float64],
    variance: NDArray[np.float64],
    quality: NDArray[np.int16],
    min_snr: float,
    min_channels: int = 1,
) -> NDArray[np.int16]:
    """OGIP GROUPING flags: groups of good channels reaching ``min_snr`` and ``min_channels``.

    The S/N of a group is ``sum(counts) / sqrt(sum(variance))``. A last group short of the
    target joins the previous group; bad-quality channels are their own groups.
    """
    n = counts.size
    grouping = np.ones(n, dtype=np.int16)
    open_ = False
    acc = var = 0.0
    width = 0
    last_start = None
    for i in range(n):
        if quality[i] != 0:
            open_, acc, var, width = False, 0.0, 0.0, 0
            continue
        if not open_:
            open_, acc, var, width = True, 0.0, 0.0, 0
            last_start = i
        else:
            grouping[i] = -1
        acc += counts[i]
        var += variance[i]
        width += 1
        if width >= min_channels and var > 0 and acc / np.sqrt(var) >= min_snr:
            open_ = False
    if open_ and last_start is not None and last_start > 0 and quality[last_start - 1] == 0:
        grouping[last_start] = -1
    return grouping


def extract_weighted_spectrum(
    ev: InstrumentEvents,
    weights: MaskWeights,
    interval: Interval,
    *,
    dead_time_s: float = 0.0,
    min_snr: float = 3.0,
    min_channels: int = 1,
    smooth_rel_width: float | None = 0.1,
) -> WeightedSpectrum:
    """Extract the mask-weighted spectrum of an imaging instrument's events for an interval.

    ``dead_time_s`` is the plane's dead time per recorded event (CALDB ``DEADTIME``).
    Events on pixels that ``weights`` does not use (dead, noisy) have weight 0. The variance
    is smoothed over ``+-smooth_rel_width * E`` (:func:`smooth_variance`; ``None``: the raw
    ``sum(w^2)`` per channel).

    Raises
    ------
    InputDataError
        Events without pixel coordinates, an empty interval (no good time, no event), or
        weights for another detector size.
    """
    where = source_file(ev)
    data = ev.events
    if data.pixel_y is None or data.pixel_z is None:
        raise InputDataError(f"{where}: no pixel coordinates: cannot mask-weight the events")
    a, b = float(interval[0]), float(interval[1])
    if not b > a:
        raise InputDataError(f"{where}: empty interval [{a}, {b}] s")
    pieces = _intersect([(a, b)], data.gti)
    if not pieces:
        raise InputDataError(f"{where}: interval [{a:.3f}, {b:.3f}] s has no good time")
    sel = np.zeros(data.time.size, dtype=bool)
    for p0, p1 in pieces:
        i0, i1 = np.searchsorted(data.time, [p0, p1])
        sel[i0:i1] = True
    n_events = int(sel.sum())
    if n_events == 0:
        raise InputDataError(f"{where}: no event in [{a:.3f}, {b:.3f}] s (empty interval)")
    ny, nz = weights.weights.shape
    if int(data.pixel_y.max()) >= ny or int(data.pixel_z.max()) >= nz:
        raise InputDataError(
            f"{where}: events on pixels beyond the {weights.weights.shape} plane of the weights"
        )
    w = event_weights(weights, data.pixel_y[sel], data.pixel_z[sel])
    e_min, e_max, first = channel_bounds(ev, 0)
    chan = data.channel[sel].astype(np.int64) - first
    counts, raw_var = weighted_spectrum(chan, w, e_min.size)
    exposure, _ = _live(ev, pieces, 0, dead_time_s)
    quality = low_threshold_quality(ev, e_max)
    var = (
        raw_var
        if smooth_rel_width is None
        else smooth_variance(raw_var, quality, 0.5 * (e_min + e_max), rel_width=smooth_rel_width)
    )
    return WeightedSpectrum(
        instrument=ev.key,
        detector=data.detectors[0],
        interval=(a, b),
        counts=counts,
        variance=var,
        raw_variance=raw_var,
        exposure=float(exposure),
        n_events=n_events,
        grouping=group_min_snr(counts, var, quality, min_snr, min_channels),
        quality=quality,
        first_channel=first,
        weight_norm=weights.norm,
        coding_fraction=weights.coding_fraction,
        smooth_rel_width=smooth_rel_width,
    )


def weighted_spectra_hdu(
    spectra: Sequence[WeightedSpectrum],
    *,
    telescope: str,
    instrument: str,
    timeref: TimeReference,
    t0: float,
    respfile: str | None,
    extra_cards: Sequence[tuple[str, object, str]] = (),
) -> fits.BinTableHDU:
    """Build the ``SPECTRUM`` HDU of mask-weighted spectra: PHA type I or II (several intervals).

    Counts are floats with ``STAT_ERR`` and ``POISSERR = F``; no background file (the
    weighting subtracts it). Times are mission seconds (``t0`` is added).
    """
    hdu = interval_pha_hdu(
        [s.counts for s in spectra],
        [s.exposure for s in spectra],
        [s.interval for s in spectra],
        t0=t0,
        telescope=telescope,
        instrument=instrument,
        timeref=timeref,
        first_channel=spectra[0].first_channel if spectra else 0,
        respfile=respfile,
        stat_err=[np.sqrt(s.variance) for s in spectra],
        channel_columns=[
            ("QUALITY", "I", [s.quality for s in spectra]),
            ("GROUPING", "I", [s.grouping for s in spectra]),
            ("RAW_VAR", "D", [s.raw_variance for s in spectra]),
        ],
    )
    h = hdu.header
    h["VARSMTH"] = (
        spectra[0].smooth_rel_width or 0.0,
        "STAT_ERR: sum(w^2) averaged over +-VARSMTH*E",
    )
    h["HDUCLAS2"] = ("NET", "background-subtracted by mask weighting")
    h["DETNAM"] = (spectra[0].detector, "detector")
    h["MASKWT"] = (True, "mask-weighted counts (sum of event weights)")
    h["WTNORM"] = (spectra[0].weight_norm, "sum(w*shadow*usable), lit pixel equivalents")
    h["CODFRAC"] = (spectra[0].coding_fraction, "coding fraction of the source")
    for k, v, c in extra_cards:
        h[k] = (v, c)
    return hdu
