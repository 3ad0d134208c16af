"""Spectra and responses as the fits see them, built in memory from what the products hold.

The fits use exactly the numbers of the published PHA, BAK and RSP products (what XSPEC
would read from them): counts, exposures and scalings as stored (double precision, Poisson
counts as integers), responses in the single precision of the OGIP files. Building them here
instead of reading the products back keeps the steps free of files; the labels name the
products (``PHA_GRM-GRD01{2}``) in every message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from svomflow.errors import InputDataError
from svomflow.products.ogip_spectra import PhaSpectrum, Response
from svomflow.tasks.spectral import SpectrumDataset

__all__ = ["FitDataset", "pha_spectrum", "single_precision_response"]


def _f32(a: NDArray[np.floating]) -> NDArray[np.float64]:
    """Values as an OGIP file stores them (``E`` columns), back in double precision."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def single_precision_response(
    label: str,
    energ_lo: NDArray[np.float64],
    energ_hi: NDArray[np.float64],
    matrix: NDArray[np.float64],
    e_min: NDArray[np.float64],
    e_max: NDArray[np.float64],
    *,
    validity: tuple[float, float] | None = None,
) -> Response:
    """Build a full response (cm2 counts per photon) with the values its RSP product stores.

    ``validity`` (mission s) is the span over which the attitude-dependent matrix holds
    (the product's ``TSTART``/``TSTOP``).
    """
    return Response(
        energ_lo=_f32(energ_lo),
        energ_hi=_f32(energ_hi),
        matrix=_f32(matrix),
        e_min=_f32(e_min),
        e_max=_f32(e_max),
        first_channel=0,
        path=Path(label),
        has_area=True,
        tstart=None if validity is None else float(validity[0]),
        tstop=None if validity is None else float(validity[1]),
    )


def pha_spectrum(
    label: str,
    row: int,
    counts: NDArray[np.float64],
    *,
    exposure: float,
    interval_met: tuple[float, float],
    first_channel: int,
    quality: NDArray[np.integer] | None = None,
    grouping: NDArray[np.integer] | None = None,
    stat_err: NDArray[np.float64] | None = None,
    backscal: float = 1.0,
    background: bool = False,
) -> PhaSpectrum:
    """One row of a PHA type II product as a spectrum (Poisson counts unless ``stat_err``)."""
    n = counts.size
    poisson = stat_err is None
    return PhaSpectrum(
        path=Path(label),
        row=row,
        channel=np.arange(first_channel, first_channel + n, dtype=np.int64),
        # the product stores Poisson counts as integers
        counts=np.rint(counts).astype(np.int32).astype(np.float64) if poisson else counts.copy(),
        stat_err=None if poisson else np.asarray(stat_err, dtype=np.float64),
        sys_err=np.zeros(n),
        quality=np.zeros(n, np.int64) if quality is None else np.asarray(quality, np.int64),
        grouping=np.ones(n, np.int64) if grouping is None else np.asarray(grouping, np.int64),
        exposure=float(exposure),
        backscal=np.full(n, float(backscal)),
        areascal=np.ones(n),
        poisserr=poisson,
        tstart=float(interval_met[0]),
        tstop=float(interval_met[1]),
        is_background=background,
    )


@dataclass(frozen=True)
class FitDataset:
    """One spectrum of one interval ready to fit: the dataset, its fit range and statistic.

    ``instrument`` is the definition name (``eclairs``); ``stat`` overrides the fit's
    statistic for this dataset (chi2 for a mask-weighted spectrum).
    """

    dataset: SpectrumDataset
    energy_kev: tuple[float, float]
    instrument: str
    stat: str | None = None

    @property
    def name(self) -> str:
        """Dataset name in the fit (``eclairs``, ``grm_GRD01``)."""
        return self.dataset.name

    def check_response_covers(self) -> None:
        """Raise when the response's validity does not contain the spectrum's interval."""
        src, rsp = self.dataset.source, self.dataset.response
        if None in (src.tstart, src.tstop, rsp.tstart, rsp.tstop):
            return
        assert src.tstart is not None and src.tstop is not None
        assert rsp.tstart is not None and rsp.tstop is not None
        if src.tstart < rsp.tstart - 1e-6 or src.tstop > rsp.tstop + 1e-6:
            raise InputDataError(
                f"{rsp.label}: the response is valid over [{rsp.tstart}, {rsp.tstop}] which does "
                f"not contain the interval [{src.tstart}, {src.tstop}]"
            )

    def selected(self) -> SpectrumDataset:
        """Return a copy of the dataset with this fit range selected (the original is kept)."""
        self.check_response_covers()
        if self.dataset.source.counts.sum() <= 0:
            raise InputDataError(
                f"{self.dataset.source.label}: the spectrum has no counts (empty interval?)"
            )
        ds = SpectrumDataset(
            name=self.dataset.name,
            source=self.dataset.source,
            response=self.dataset.response,
            background=self.dataset.background,
            notes=list(self.dataset.notes),
        )
        return ds.select_energy([self.energy_kev])
