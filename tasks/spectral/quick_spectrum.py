"""GRM quick spectrum (QSPEC, VHF flow): CPL or Band fit of the detectors' counts in one interval.

Pure step: counts per detector and channel, the background expected in the same interval
(from the background fit, with its variance), and the GRM responses for the burst direction
(RSP-like: effective area included). The detectors are fitted jointly without
cross-normalisation (one instrument, one calibration), with PG-stat by default (Poisson
counts, Gaussian background-model uncertainty; zero variance means a known background).

Energy ranges are per detector (a NaI crystal and a BGO crystal do not share a useful
range, and the iodine K-edge region of NaI is excluded as in the GBM catalog fits). They
come, in this order, from the ``energy_ranges`` argument, the instrument definition
(``quick_spectrum`` section, per detector under ``detectors[].quick_spectrum`` or for the
whole instrument), or the configuration's detector types, matched on the lowest edge of
each detector's EBOUNDS (NaI-like below 50 keV, BGO-like above). ``energy_range_kev``, when
set, limits every detector's ranges to one overall band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from pydantic import Field
from svomflow.config import InstrumentDefinition, StepConfig
from svomflow.errors import InputDataError
from svomflow.products.ogip_spectra import PhaSpectrum, Response
from svomflow.tasks.spectral.dataset import SpectrumDataset
from svomflow.tasks.spectral.fit import FitResult, errors, fit
from svomflow.tasks.spectral.flux import flux

__all__ = [
    "DetectorTypeRanges",
    "QuickSpectrum",
    "QuickSpectrumConfig",
    "detector_energy_ranges",
    "quick_spectrum",
    "subtract_windows",
]

Range = tuple[float, float]


class DetectorTypeRanges(StepConfig):
    """Fit ranges of one detector type, recognised by the lowest edge of its EBOUNDS."""

    name: str = Field(description="detector type (for messages and the result)")
    lowest_edge_kev: Range = Field(
        description="a detector whose lowest EBOUNDS edge lies in [lo, hi) is of this type"
    )
    fit_ranges_kev: list[Range] = Field(description="energy ranges fitted (keV)")
    exclude_kev: list[Range] = Field(
        default_factory=list, description="energy windows removed from the ranges (keV)"
    )


def _default_detector_types() -> list[DetectorTypeRanges]:
    # GBM spectral-catalog practice (Gruber et al. 2014; the GCN fits of 090217A): NaI
    # 8-900 keV without the iodine K-edge region 30-40 keV, BGO 250 keV-38 MeV. A NaI
    # crystal's channels start at a few keV, a BGO crystal's near 100 keV.
    return [
        DetectorTypeRanges(
            name="NaI",
            lowest_edge_kev=(0.0, 50.0),
            fit_ranges_kev=[(8.0, 900.0)],
            exclude_kev=[(30.0, 40.0)],
        ),
        DetectorTypeRanges(
            name="BGO", lowest_edge_kev=(50.0, 1.0e6), fit_ranges_kev=[(250.0, 38000.0)]
        ),
    ]


class QuickSpectrumConfig(StepConfig):
    """Configuration of the GRM quick spectral fit."""

    model: Literal["cpl", "band"] = Field(
        "cpl", description="photon model: cutoff power law or Band"
    )
    stat: Literal["pgstat", "cstat"] = Field(
        "pgstat",
        description="statistic (cstat with a background model becomes pgstat, as in XSPEC)",
    )
    energy_range_kev: Range | None = Field(
        None,
        description="overall band (keV) limiting every detector's ranges (none: no limit)",
    )
    detector_types: list[DetectorTypeRanges] = Field(
        default_factory=_default_detector_types,
        description="fit ranges by detector type, used when the instrument definition has "
        "no quick_spectrum section",
    )
    pivot_kev: float = Field(100.0, gt=0, description="pivot energy of the amplitude K (keV)")
    compute_errors: bool = Field(True, description="profile (delta-stat = 1) errors")
    flux_band_kev: tuple[float, float] = Field((10.0, 1000.0), description="flux band (keV)")
    n_flux_samples: int = Field(500, ge=0, description="covariance draws for flux errors")


@dataclass
class QuickSpectrum:
    """Quick spectral parameters (QSP_GRM): best fit, errors, fluxes and quality flags."""

    model: str
    statistic: str
    stat: float
    dof: int
    parameters: dict[str, dict[str, float | None]]
    photon_flux: dict[str, Any]
    energy_flux: dict[str, Any]
    converged: bool
    flags: list[str] = field(default_factory=list)
    result: FitResult | None = None
    energy_ranges: dict[str, list[Range]] = field(default_factory=dict)
    range_sources: dict[str, str] = field(default_factory=dict)

    @property
    def epeak(self) -> float:
        """Best-fit peak energy of the nuFnu spectrum (keV)."""
        return float(self.parameters["epeak"]["value"])  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            "model": self.model,
            "statistic": self.statistic,
            "stat": self.stat,
            "dof": self.dof,
            "parameters": self.parameters,
            "photon_flux": self.photon_flux,
            "energy_flux": self.energy_flux,
            "converged": self.converged,
            "flags": list(self.flags),
            "energy_ranges_kev": {k: [list(r) for r in v] for k, v in self.energy_ranges.items()},
            "energy_range_sources": dict(self.range_sources),
        }


def _memory_pha(
    name: str, counts: np.ndarray, exposure: float, err: np.ndarray | None
) -> PhaSpectrum:
    n = counts.size
    return PhaSpectrum(
        path=Path(f"<{name}>"),
        row=None,
        channel=np.arange(1, n + 1),
        counts=np.asarray(counts, dtype=float),
        stat_err=err,
        sys_err=np.zeros(n),
        quality=np.zeros(n, dtype=np.int64),
        grouping=np.ones(n, dtype=np.int64),
        exposure=float(exposure),
        backscal=np.ones(n),
        areascal=np.ones(n),
        poisserr=err is None,
    )


def _check_ranges(ranges: Sequence[Sequence[float]], where: str) -> list[Range]:
    out = []
    for r in ranges:
        if len(r) != 2 or not float(r[0]) < float(r[1]):
            raise InputDataError(f"{where}: energy range {list(r)} is not [lo, hi] with lo < hi")
        out.append((float(r[0]), float(r[1])))
    return out


def subtract_windows(ranges: Sequence[Range], exclude: Sequence[Range]) -> list[Range]:
    """Ranges with the exclusion windows cut out (pieces of zero width dropped)."""
    pieces = [(float(a), float(b)) for a, b in ranges]
    for x0, x1 in exclude:
        nxt = []
        for a, b in pieces:
            if x1 <= a or x0 >= b:
                nxt.append((a, b))
                continue
            if x0 > a:
                nxt.append((a, float(x0)))
            if x1 < b:
                nxt.append((float(x1), b))
        pieces = nxt
    return sorted(pieces)


def _definition_ranges(
    definition: InstrumentDefinition, detector: str
) -> tuple[list[Range], list[Range], str] | None:
    """Return the instrument's ``quick_spectrum`` keys, overridden by the detector's own section."""
    sec = dict(definition.get("quick_spectrum", None) or {})
    source = f"instrument {definition.name}"
    for d in definition.get("detectors", None) or []:
        if isinstance(d, dict) and d.get("name") == detector and "quick_spectrum" in d:
            sec.update(d["quick_spectrum"])
            source = f"instrument {definition.name}: detector {detector}"
    if not sec:
        return None
    return (
        _check_ranges(sec.get("fit_ranges_kev", []), source),
        _check_ranges(sec.get("exclude_kev", []), source),
        source,
    )


def detector_energy_ranges(
    response: Response,
    detector: str,
    config: QuickSpectrumConfig | None = None,
    definition: InstrumentDefinition | None = None,
) -> tuple[list[Range], str]:
    """Energy ranges (keV) to fit for one detector, and where they came from.

    From the instrument definition's ``quick_spectrum`` section when it has one (a
    detector's own section first), else from the configuration's detector type whose
    ``lowest_edge_kev`` span holds the lowest EBOUNDS edge of ``response``. Exclusion
    windows are cut out, ``config.energy_range_kev`` limits the result, and the ranges are
    clipped to the detector's EBOUNDS span.

    Raises
    ------
    InputDataError
        No rule applies to the detector, or no energy range is left.
    """
    cfg = config or QuickSpectrumConfig()
    found = _definition_ranges(definition, detector) if definition is not None else None
    e_lo, e_hi = float(np.min(response.e_min)), float(np.max(response.e_max))
    if found is not None:
        fit_ranges, exclude, source = found
    else:
        match = [
            t for t in cfg.detector_types if t.lowest_edge_kev[0] <= e_lo < t.lowest_edge_kev[1]
        ]
        if not match:
            raise InputDataError(
                f"{detector}: no detector type of the quick-spectrum configuration matches its "
                f"lowest channel edge {e_lo:g} keV, and the instrument gives no quick_spectrum "
                f"ranges"
            )
        t = match[0]
        fit_ranges, exclude = list(t.fit_ranges_kev), list(t.exclude_kev)
        source = f"detector type {t.name} (lowest EBOUNDS edge {e_lo:g} keV)"
    limit = [(e_lo, e_hi)]
    if cfg.energy_range_kev is not None:
        a, b = cfg.energy_range_kev
        limit = [(max(a, e_lo), min(b, e_hi))]
    ranges = subtract_windows(fit_ranges, exclude)
    clipped = []
    for a, b in ranges:
        lo, hi = max(a, limit[0][0]), min(b, limit[0][1])
        if hi > lo:
            clipped.append((lo, hi))
    if not clipped:
        raise InputDataError(
            f"{detector}: no energy range left to fit ({source}: {fit_ranges} minus {exclude}, "
            f"channels {e_lo:g}-{e_hi:g} keV)"
        )
    return clipped, source


def quick_spectrum(
    counts_per_detector: Sequence[np.ndarray],
    background: Sequence[np.ndarray | tuple[np.ndarray, np.ndarray]],
    responses: Sequence[Response],
    exposure: float | Sequence[float],
    model: str | None = None,
    config: QuickSpectrumConfig | None = None,
    names: Sequence[str] | None = None,
    *,
    definition: InstrumentDefinition | None = None,
    energy_ranges: Sequence[Sequence[Range]] | None = None,
) -> QuickSpectrum:
    """Fit a CPL/Band spectrum to the GRM detectors' counts in one interval.

    Parameters
    ----------
    counts_per_detector : counts per channel, one array per detector.
    background : expected background counts per channel in the same interval, one per
        detector, either an array (known exactly) or ``(counts, variance)``.
    responses : response of each detector for the burst direction (effective area included).
    exposure : live time (s) of the interval, one value or one per detector.
    model : ``"cpl"`` or ``"band"`` (overrides ``config.model``).
    names : detector names (as in the instrument definition's ``detectors``).
    definition : instrument definition whose ``quick_spectrum`` section gives the ranges.
    energy_ranges : explicit ranges (keV), one list per detector (overrides the rest).
    """
    cfg = config or QuickSpectrumConfig()
    mdl = model or cfg.model
    nd = len(counts_per_detector)
    if nd == 0 or len(background) != nd or len(responses) != nd:
        raise InputDataError(
            "quick_spectrum needs counts, background and response for each detector"
        )
    if np.ndim(exposure) == 0:
        exposures = [float(cast(float, exposure))] * nd
    else:
        exposures = [float(e) for e in cast(Sequence[float], exposure)]
    labels = list(names) if names is not None else [f"det{i}" for i in range(nd)]
    if energy_ranges is not None and len(energy_ranges) != nd:
        raise InputDataError(f"energy_ranges has {len(energy_ranges)} entries for {nd} detectors")
    used_ranges: dict[str, list[Range]] = {}
    sources: dict[str, str] = {}
    datasets = []
    for i in range(nd):
        counts = np.asarray(counts_per_detector[i], dtype=float)
        bk = background[i]
        if isinstance(bk, tuple):
            bcounts, bvar = (np.asarray(a, dtype=float) for a in bk)
        else:
            bcounts, bvar = np.asarray(bk, dtype=float), np.zeros(counts.size)
        if bcounts.shape != counts.shape or bvar.shape != counts.shape:
            raise InputDataError(f"{labels[i]}: background and counts have different lengths")
        src = _memory_pha(labels[i], counts, exposures[i], None)
        bkg = _memory_pha(
            labels[i] + " background", bcounts, exposures[i], np.sqrt(np.maximum(bvar, 0.0))
        )
        ds = SpectrumDataset(name=labels[i], source=src, response=responses[i], background=bkg)
        if energy_ranges is not None:
            rng = _check_ranges(energy_ranges[i], labels[i])
            src_note = "explicit"
        else:
            rng, src_note = detector_energy_ranges(responses[i], labels[i], cfg, definition)
        ds.select_energy(rng)
        used_ranges[labels[i]] = rng
        sources[labels[i]] = src_note
        datasets.append(ds)
    result = fit(datasets, mdl, stat=cfg.stat, pivot=cfg.pivot_kev, cross_norm=False)
    if cfg.compute_errors:
        errors(result)
    flags = []
    if not result.converged:
        flags.append("not_converged")
    for name, pr in result.parameters.items():
        if pr.at_bound and not pr.frozen:
            flags.append(f"{name}_at_bound")
    pf = flux(result, cfg.flux_band_kev, "photon", n_samples=cfg.n_flux_samples)
    ef = flux(result, cfg.flux_band_kev, "energy", n_samples=cfg.n_flux_samples)
    params = {
        k: {
            "value": v.value,
            "error_low": v.error_low,
            "error_high": v.error_high,
            "error": v.error,
        }
        for k, v in result.parameters.items()
        if not v.frozen
    }
    return QuickSpectrum(
        model=mdl,
        statistic=result.statistic,
        stat=result.stat,
        dof=result.dof,
        parameters=params,
        photon_flux=pf.to_dict(),
        energy_flux=ef.to_dict(),
        converged=result.converged,
        flags=flags,
        result=result,
        energy_ranges=used_ranges,
        range_sources=sources,
    )
