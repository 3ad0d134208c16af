"""What the VHF timing steps return for one instrument: light curves, T90, peak, hardness, trigger.

Times are in seconds since the burst's ``t0``. :class:`InstrumentCurves` is the result of the
``lightcurves`` step (or :class:`NoBurst` when the instrument does not show the burst);
:class:`InstrumentTiming` the result of the ``timing`` step, with its products.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from svomflow.products.catalogue import Product
from svomflow.tasks.timing import (
    BackgroundModel,
    BinnedCounts,
    Durations,
    HardnessRatio,
    NetCounts,
    PeakFlux,
    TriggerResult,
)
from svomflow.tasks.timing.t90_status import T90Status
from svomflow.tasks.vhf.bands import Band

__all__ = ["Band", "BandCurve", "InstrumentCurves", "InstrumentTiming", "NoBurst"]


@dataclass
class BandCurve:
    """A light curve of one band with its background model (None if it could not be fitted)."""

    band_kev: Band
    bins: BinnedCounts
    background: BackgroundModel | None


@dataclass
class NoBurst:
    """An instrument whose T90 band shows no significant excess: why, for the run's flags."""

    instrument: str
    reason: str


@dataclass
class InstrumentCurves:
    """Light curves of one instrument: the T90 band with its background and T90, QLC bands, OBLC.

    ``dt_s`` is the bin width chosen from the burst for the T90 analysis; the per-band and
    per-detector backgrounds of the later steps are fitted on that clock.
    """

    instrument: str
    band_kev: Band
    curve: BandCurve
    light_curves: list[BandCurve]
    oblc: list[BandCurve]
    trigger_bands: list[Band]
    durations: Durations | None
    t90_status: T90Status
    dt_s: float
    flags: list[str] = field(default_factory=list)


@dataclass
class InstrumentTiming:
    """Timing results of one instrument (times in s since ``t0``) and its timing products."""

    instrument: str
    band_kev: Band
    curve: BandCurve
    durations: Durations | None
    peaks: list[PeakFlux]
    trigger: TriggerResult | None
    hardness: HardnessRatio | None
    light_curves: list[BandCurve]
    oblc: list[BandCurve]
    detector_net: dict[str, NetCounts]
    flags: list[str] = field(default_factory=list)
    dt_s: float = 0.064
    t90_status: T90Status = field(default_factory=lambda: T90Status("GOOD"))
    products: list[Product] = field(default_factory=list)

    @property
    def burst_interval(self) -> tuple[float, float]:
        """The T90 interval, or the background fit's source interval when T90 failed."""
        if self.durations is not None:
            d = self.durations
            return (d.t90_start, d.t90_start + d.t90)
        assert self.curve.background is not None
        return self.curve.background.source

    @property
    def background_intervals(self) -> list[tuple[float, float]]:
        """Off-source intervals of the background fit (s since t0)."""
        assert self.curve.background is not None
        return [(float(a), float(b)) for a, b in self.curve.background.intervals]
