"""Default channel selection and statistic of a spectrum, from the instrument that wrote it.

A GBM, BAT (or GRM, ECLAIRs) spectrum names its instrument in ``TELESCOP``/``INSTRUME``/
``DETNAM``; the instrument definition (``config/instruments``, ``spectral_fit`` section)
gives the energy ranges its specialists fit (GBM catalog: NaI 8-900 keV, BGO 250-40000
keV; BAT 15-150 keV), the number of overflow channels at the top of the spectrum and the
statistic its spectra take. The user's channel or energy ranges replace the default
ranges; the overflow channels stay excluded from energy selections (their upper edge is not
an energy), never from an explicit channel selection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from svomflow.config.instrument import InstrumentDefinition, match_instrument
from svomflow.tasks.spectral.dataset import SpectrumDataset, parse_ranges

__all__ = [
    "ChannelSelection",
    "apply_selection",
    "default_cross_norm",
    "default_statistic",
    "instrument_of",
]


@dataclass(frozen=True)
class ChannelSelection:
    """What was selected in one dataset, and why (for the command line and logs)."""

    dataset: str
    instrument: str | None
    origin: str
    ranges: str
    channel_runs: tuple[tuple[int, int], ...]
    n_selected: int
    n_channels: int
    overflow_excluded: int

    def describe(self) -> str:
        """One line: dataset, instrument, ranges and the channel numbers kept."""
        runs = ",".join(f"{a}-{b}" if a != b else f"{a}" for a, b in self.channel_runs)
        inst = f" [{self.instrument}]" if self.instrument else ""
        extra = (
            f"; overflow channel{'s' if self.overflow_excluded > 1 else ''} excluded"
            if self.overflow_excluded
            else ""
        )
        return (
            f"{self.dataset}{inst}: {self.origin} {self.ranges} -> channels {runs} "
            f"({self.n_selected} of {self.n_channels}{extra})"
        )


def instrument_of(dataset: SpectrumDataset) -> InstrumentDefinition | None:
    """Return the instrument definition named by the spectrum's header, if one fits."""
    hdr = dataset.source.header
    return match_instrument(hdr.get("TELESCOP"), hdr.get("INSTRUME"), hdr.get("DETNAM"))


def _runs(channels: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Contiguous runs of channel numbers (``[1, 2, 3, 7]`` -> ``((1, 3), (7, 7))``)."""
    if channels.size == 0:
        return ()
    breaks = np.flatnonzero(np.diff(channels) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [channels.size - 1]])
    return tuple((int(channels[a]), int(channels[b])) for a, b in zip(starts, ends, strict=True))


def _format_ranges(ranges: list[tuple[float, float]], unit: str) -> str:
    return ",".join(f"{lo:g}-{hi:g}" for lo, hi in ranges) + unit


def apply_selection(
    dataset: SpectrumDataset,
    channels: str | None = None,
    energy: str | None = None,
    *,
    use_defaults: bool = True,
) -> ChannelSelection:
    """Select the channels of ``dataset``: the user's ranges, else the instrument's defaults.

    Parameters
    ----------
    dataset : the spectrum; its selection is replaced.
    channels : channel-number ranges (``"4-124"``); used as given.
    energy : energy ranges in keV (``"8-900"``); overflow channels are then excluded.
    use_defaults : apply the instrument's defaults: its ranges when neither ``channels``
        nor ``energy`` is given, and the overflow exclusion (``False``: nothing
        instrument-specific, every channel kept without ranges, as XSPEC before ``ignore``).

    Returns
    -------
    ChannelSelection
        The ranges applied, where they came from and the channels kept.
    """
    defn = instrument_of(dataset)
    fit_defaults = defn.get("spectral_fit", {}) if defn is not None else {}
    n_overflow = int(fit_defaults.get("overflow_channels", 0) or 0) if use_defaults else 0
    default_ranges = [tuple(r) for r in fit_defaults.get("energy_ranges_kev", [])]
    if channels:
        dataset.select_channels(channels)
        origin, text, n_overflow = "channels", _format_ranges(parse_ranges(channels), ""), 0
    elif energy:
        dataset.select_energy(energy)
        origin, text = "energy", _format_ranges(parse_ranges(energy), " keV")
    elif use_defaults and default_ranges:
        ranges = [(float(a), float(b)) for a, b in default_ranges]
        dataset.select_energy(ranges)
        origin, text = "instrument default", _format_ranges(ranges, " keV")
    else:
        dataset.reset_selection()
        origin, text = "all channels", "(no default known)" if defn is None else "(all)"
    excluded = 0
    if n_overflow > 0:
        excluded = int(np.count_nonzero(dataset.selected[-n_overflow:]))
        dataset.selected[-n_overflow:] = False
    kept = dataset.selected & (dataset.source.quality == 0)
    return ChannelSelection(
        dataset=dataset.name,
        instrument=defn.name if defn is not None else None,
        origin=origin,
        ranges=text,
        channel_runs=_runs(dataset.source.channel[kept]),
        n_selected=int(np.count_nonzero(kept)),
        n_channels=dataset.source.n_channels,
        overflow_excluded=excluded,
    )


def default_statistic(dataset: SpectrumDataset) -> str:
    """Return the statistic the instrument's spectra take, else one the data allow.

    The instrument definition's ``spectral_fit.statistic`` wins; otherwise a spectrum with
    Gaussian errors and non-integer counts (mask-weighted) takes ``chi2`` and any other
    ``cstat`` (which becomes W-stat or PG-stat with a background, as in XSPEC).
    """
    defn = instrument_of(dataset)
    if defn is not None:
        stat = defn.get("spectral_fit.statistic", None)
        if stat:
            return str(stat)
    src = dataset.source
    if src.stat_err is not None and not src.integer_counts:
        return "chi2"
    return "cstat"


def default_cross_norm(datasets: Sequence[SpectrumDataset]) -> list[bool]:
    """Whether each dataset after the first gets a free normalisation in a joint fit.

    Detectors of one instrument share its calibration (the GBM catalog fits NaI and BGO
    with one amplitude); another instrument (BAT next to GBM) gets a free
    cross-normalisation for its different effective-area calibration. Instruments are told
    apart by the ``TELESCOP``/``INSTRUME`` keywords of the files.
    """

    def key(d: SpectrumDataset) -> tuple[str, str]:
        hdr = d.source.header
        return (
            str(hdr.get("TELESCOP") or "").strip().upper(),
            str(hdr.get("INSTRUME") or "").strip().upper(),
        )

    first = key(datasets[0]) if datasets else ("", "")
    return [key(d) != first or first == ("", "") for d in datasets[1:]]
