"""A spectrum ready for fitting: source, background and response, with grouping and selections.

``load()`` reads OGIP files (auxiliary files from the PHA header when not given, as XSPEC and
sherpa do); :class:`SpectrumDataset` keeps channel selections; :meth:`SpectrumDataset.prepare`
produces the grouped arrays the statistics need.

Channel rules (those of XSPEC/sherpa): channels with ``QUALITY != 0`` are dropped; channels
are summed into the file's groups (``GROUPING`` 1 starts a group, -1 continues it); a group
is used when one of its channels is inside a channel or energy selection (so sherpa's
``notice(41, 167)`` on the ASCA spectrum keeps the group starting at channel 167).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from svomflow.errors import InputDataError
from svomflow.products.ogip_spectra import (
    PhaSpectrum,
    Response,
    read_arf,
    read_pha,
    read_response,
    read_response_set,
    resolve_auxiliary,
    select_response,
)
from svomflow.tasks.spectral.models import EnergyGrid

__all__ = ["PreparedSpectrum", "SpectrumDataset", "load", "parse_ranges"]

log = logging.getLogger(__name__)


@dataclass
class PreparedSpectrum:
    """Grouped, selected arrays of one dataset (all in counts over the exposure).

    ``fold`` maps photon flux per energy bin (ph/cm2/s) to predicted source counts per group
    (exposure and AREASCAL included); ``r`` is the background-to-source scaling
    t_b/t_s (EXPOSURE x BACKSCAL x AREASCAL), so the background expected in the source
    spectrum is ``bkg / r``.
    """

    name: str
    counts: np.ndarray
    src_var: np.ndarray | None
    sys_var: np.ndarray
    bkg: np.ndarray | None
    bkg_var: np.ndarray | None
    bkg_poisson: bool
    r: np.ndarray
    fold: np.ndarray
    grid: EnergyGrid
    e_lo: np.ndarray
    e_hi: np.ndarray
    exposure: float
    groups: list[np.ndarray]

    @property
    def n_bins(self) -> int:
        """Number of grouped bins used in the fit."""
        return int(self.counts.size)

    @property
    def scaled_background(self) -> np.ndarray:
        """Background counts expected in the source spectrum (``bkg / r``), zeros without one."""
        if self.bkg is None:
            return np.zeros_like(self.counts)
        return self.bkg / self.r


def parse_ranges(text: str | Sequence[tuple[float, float]] | None) -> list[tuple[float, float]]:
    """Parse ``"10-30,40-950"`` (or a list of pairs) into ``[(10, 30), (40, 950)]``."""
    if text is None:
        return []
    if not isinstance(text, str):
        return [(float(a), float(b)) for a, b in text]
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        pieces = part.split("-")
        if len(pieces) != 2:
            raise InputDataError(f"range {part!r} is not of the form lo-hi")
        try:
            lo, hi = float(pieces[0]), float(pieces[1])
        except ValueError as exc:
            raise InputDataError(f"range {part!r} is not of the form lo-hi") from exc
        if hi < lo:
            raise InputDataError(f"range {part!r} has hi < lo")
        out.append((lo, hi))
    return out


@dataclass
class SpectrumDataset:
    """Source spectrum, optional background and response, with a channel selection."""

    name: str
    source: PhaSpectrum
    response: Response
    background: PhaSpectrum | None = None
    selected: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    notes: list[str] = field(default_factory=list)
    #: Add the file's fractional ``SYS_ERR`` to the chi-square variance, as XSPEC and sherpa
    #: do (threeML ignores the column: ``False`` reproduces its fits).
    use_sys_err: bool = True

    def __post_init__(self) -> None:
        n = self.source.n_channels
        if self.response.n_channels != n:
            raise InputDataError(
                f"{self.source.label} has {n} channels but the response {self.response.label} "
                f"has {self.response.n_channels}"
            )
        if self.background is not None and self.background.n_channels != n:
            raise InputDataError(
                f"{self.source.label} has {n} channels but the background "
                f"{self.background.label} has {self.background.n_channels}"
            )
        if self.selected.size != n:
            self.selected = np.ones(n, dtype=bool)

    @property
    def label(self) -> str:
        """Files of this dataset, for messages."""
        parts = [self.source.label, self.response.label]
        if self.background is not None:
            parts.insert(1, self.background.label)
        return ", ".join(parts)

    def select_channels(self, ranges: str | Sequence[tuple[float, float]]) -> SpectrumDataset:
        """Keep only channels whose number (PHA ``CHANNEL``) is in one of ``ranges``."""
        sel = np.zeros(self.source.n_channels, dtype=bool)
        for lo, hi in parse_ranges(ranges):
            sel |= (self.source.channel >= lo) & (self.source.channel <= hi)
        self.selected = sel
        return self

    def select_energy(self, ranges: str | Sequence[tuple[float, float]]) -> SpectrumDataset:
        """Keep only channels whose EBOUNDS interval overlaps one of ``ranges`` (keV)."""
        sel = np.zeros(self.source.n_channels, dtype=bool)
        for lo, hi in parse_ranges(ranges):
            sel |= (self.response.e_max > lo) & (self.response.e_min < hi)
        self.selected = sel
        return self

    def reset_selection(self) -> SpectrumDataset:
        """Use every channel again (quality still applies)."""
        self.selected = np.ones(self.source.n_channels, dtype=bool)
        return self

    def _groups(self) -> list[np.ndarray]:
        good = self.source.quality == 0
        grouping = self.source.grouping
        starts = np.flatnonzero(grouping != -1)
        if starts.size == 0 or starts[0] != 0:
            starts = np.concatenate([[0], starts])
        bounds = np.append(starts, grouping.size)
        groups = []
        for a, b in itertools.pairwise(bounds):
            idx = np.arange(a, b)
            idx = idx[good[idx]]
            if idx.size and np.any(self.selected[idx]):
                groups.append(idx)
        return groups

    def prepare(self, n_sub: int = 1) -> PreparedSpectrum:
        """Group and select the channels; build the fold matrix and the background arrays."""
        groups = self._groups()
        if not groups:
            raise InputDataError(f"{self.label}: no channels left after quality and selection")
        src = self.source
        ng = len(groups)
        sizes = np.array([g.size for g in groups])
        idx = np.concatenate(groups)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

        # Per-group sums and means in one pass (a Python loop per group costs more than the
        # fit itself for 128-channel GBM spectra).
        def gsum(a: np.ndarray) -> np.ndarray:
            return np.add.reduceat(np.asarray(a, dtype=float)[idx], starts)

        def gmean(a: np.ndarray) -> np.ndarray:
            return gsum(a) / sizes

        counts = gsum(src.counts)
        src_var = None if src.stat_err is None else gsum(src.stat_err**2)
        sys_frac = src.sys_err if self.use_sys_err else np.zeros_like(src.sys_err)
        sys_var = gsum((sys_frac * src.counts) ** 2)
        areascal = gmean(src.areascal)
        backscal = gmean(src.backscal)
        if np.all(sizes == 1):
            fold = self.response.matrix[:, idx].copy()
        else:
            fold = np.add.reduceat(self.response.matrix[:, idx], starts, axis=1)
        fold *= src.exposure * areascal[None, :]
        bkg = bkg_var = None
        r = np.ones(ng)
        bkg_poisson = True
        if self.background is not None:
            b = self.background
            bkg = gsum(b.counts)
            t_s = src.exposure * backscal * areascal
            t_b = b.exposure * gmean(b.backscal) * gmean(b.areascal)
            if np.any(t_s <= 0) or np.any(t_b <= 0):
                raise InputDataError(f"{self.label}: BACKSCAL/AREASCAL/EXPOSURE must be positive")
            r = t_b / t_s
            if b.stat_err is not None and not b.poisserr:
                bkg_var = gsum(b.stat_err**2)
                bkg_poisson = False
            else:
                bkg_var = bkg.copy()
        e_lo = np.minimum.reduceat(np.asarray(self.response.e_min, dtype=float)[idx], starts)
        e_hi = np.maximum.reduceat(np.asarray(self.response.e_max, dtype=float)[idx], starts)
        return PreparedSpectrum(
            name=self.name,
            counts=counts,
            src_var=src_var,
            sys_var=sys_var,
            bkg=bkg,
            bkg_var=bkg_var,
            bkg_poisson=bkg_poisson,
            r=r,
            fold=np.ascontiguousarray(fold),
            grid=EnergyGrid(self.response.energ_lo, self.response.energ_hi, n_sub),
            e_lo=e_lo,
            e_hi=e_hi,
            exposure=src.exposure,
            groups=groups,
        )

    @property
    def duration(self) -> float | None:
        """Elapsed time of the source spectrum (s) when known, for fluences."""
        return self.source.telapse


def _load_response(
    rsp: str | Path,
    source: PhaSpectrum,
    interval: tuple[float, float] | None,
    method: str,
) -> Response:
    responses = read_response_set(rsp)
    if len(responses) == 1:
        return responses[0]
    tstart, tstop = interval if interval is not None else (source.tstart, source.tstop)
    if tstart is None or tstop is None:
        raise InputDataError(
            f"{rsp} holds {len(responses)} matrices but {source.label} gives no time interval "
            f"to choose from; pass interval=(tstart, tstop)"
        )
    return select_response(responses, float(tstart), float(tstop), method=method)


def load(
    pha: str | Path,
    bak: str | Path | bool | None = None,
    rsp: str | Path | None = None,
    rmf: str | Path | None = None,
    arf: str | Path | None = None,
    *,
    row: int | None = None,
    name: str | None = None,
    interval: tuple[float, float] | None = None,
    rsp2_method: str = "midpoint",
) -> SpectrumDataset:
    """Load a spectrum with its background and response (header files when not given).

    Parameters
    ----------
    pha : source PHA file (``{n}`` suffix or ``row`` for a type II row).
    bak : background file; ``None`` uses the header's BACKFILE, ``False`` means none.
    rsp : full response (RSP, RMF x ARF already, e.g. GBM); multi-matrix RSP2 files are
        reduced to the matrix covering ``interval`` (default: the spectrum's own TSTART/TSTOP)
        with ``rsp2_method`` (see :func:`svomflow.products.ogip_spectra.select_response`).
    rmf, arf : redistribution matrix and effective area, as an alternative to ``rsp``.
    name : label of the dataset (default: the PHA file's stem).
    """
    source = read_pha(pha, row=row)
    notes: list[str] = []
    background = None
    if bak is not False:
        if bak is None or bak is True:
            resolved = resolve_auxiliary(source.backfile, source.path)
            if resolved is not None:
                if resolved[0].is_file():
                    background = read_pha(resolved[0], row=resolved[1])
                else:
                    note = f"background {source.backfile} named in {source.label} not found; fitting without background"
                    log.warning(note)
                    notes.append(note)
        else:
            background = read_pha(bak)
    if rsp is not None and rmf is not None:
        raise InputDataError("give either rsp or rmf (+arf), not both")
    if rsp is None and rmf is None:
        resolved = resolve_auxiliary(source.respfile, source.path)
        if resolved is None:
            raise InputDataError(f"{source.label}: no RESPFILE in the header; give rsp= or rmf=")
        if not resolved[0].is_file():
            raise InputDataError(
                f"{source.label}: response {source.respfile} named in the header not found"
            )
        response = (
            read_response(resolved[0], extension=resolved[1])
            if resolved[1] is not None
            else _load_response(resolved[0], source, interval, rsp2_method)
        )
    else:
        response = _load_response(rsp if rsp is not None else rmf, source, interval, rsp2_method)  # type: ignore[arg-type]
    if arf is not None:
        response = response.with_arf(read_arf(arf))
    elif not response.has_area:
        resolved = resolve_auxiliary(source.ancrfile, source.path)
        if resolved is not None and resolved[0].is_file():
            response = response.with_arf(read_arf(resolved[0]))
        elif resolved is not None:
            raise InputDataError(
                f"{source.label}: ARF {source.ancrfile} named in the header not found"
            )
    if source.counts.sum() <= 0:
        raise InputDataError(f"{source.label}: the spectrum has no counts (empty interval?)")
    ds = SpectrumDataset(
        name=name or source.path.name.split(".")[0],
        source=source,
        response=response,
        background=background,
        notes=notes,
    )
    return ds
