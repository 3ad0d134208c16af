"""Crude classification of a trigger: short/long GRB with a probability, plus non-GRB flags.

``p_short`` is the posterior of the short component of a two-lognormal mixture of T90
fitted to a catalog (:mod:`svomflow.tasks.classification.mixture`; parameters packaged in
``config/pipelines/classification.yaml``). The T90 error is folded in by averaging the
posterior over ``log10 T90 ~ N(log10 T90, err / (T90 ln 10))``. Hardness is not in the
catalogs, so it does not enter ``p_short``; it only drives the soft-repeater flag.

Flags for triggers that are probably not GRBs (thresholds in :class:`ClassificationConfig`,
listed as assumptions in the packaged YAML):

* ``known_source``: the position is within ``radius + error`` of a source of a given list;
* ``particle``: the net counts sit in one detector only (the others below 3 sigma while it
  is above 5 sigma) for at most ``particle_one_detector_max_t90_s``, or the event is very
  short (< ``particle_max_t90_s``) with no soft-band signal (< 3 sigma) - what a
  charged-particle hit or a TGF-like spike looks like (a longer signal in one detector only
  is flagged ``one_detector`` but classed by its duration: a burst behind the other
  detectors);
* ``soft_repeater``: short (T90 < ``sgr_max_t90_s``) and very soft (hard/soft counts ratio
  below ``sgr_max_hardness`` in the stated bands), like SGR bursts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from svomflow.config import StepConfig
from svomflow.config.catalogs import packaged_catalog
from svomflow.tasks.classification.mixture import LognormalMixture, packaged_mixture

__all__ = [
    "ClassificationConfig",
    "CrudeClass",
    "KnownSource",
    "classify",
    "p_short",
    "packaged_known_sources",
]


class KnownSource(BaseModel):
    """A known source that can mimic a trigger (name, position in degrees, radius in degrees)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="source name")
    ra_deg: float = Field(description="right ascension (deg)")
    dec_deg: float = Field(description="declination (deg)")
    radius_deg: float = Field(0.5, ge=0, description="association radius (deg)")


def packaged_known_sources() -> list[KnownSource]:
    """Return the packaged catalog of known bright X-ray sources (``catalogs/known_sources.yaml``).

    The one list the flows share: the code default of the VHF ``classification.known_sources``
    and of the X-band ``known_sources``.
    """
    return [KnownSource.model_validate(s) for s in packaged_catalog("known_sources")]


class ClassificationConfig(StepConfig):
    """Configuration of the crude classification."""

    catalog: str = Field(
        "fermi_gbm",
        description="which stored T90 mixture to use: 'fermi_gbm' (50-300 keV) or "
        "'swift_bat' (15-350 keV) (none: unit-less)",
    )
    known_sources: list[KnownSource] = Field(
        default_factory=packaged_known_sources,
        description="sources flagged when the position falls on them, and removed from the "
        "coded-mask images (default: the packaged catalog config/catalogs/known_sources.yaml)",
    )
    particle_max_t90_s: float = Field(
        0.005, gt=0, description="T90 below which a spike without soft signal is particle-like (s)"
    )
    particle_one_detector_max_t90_s: float = Field(
        1.0,
        gt=0,
        description="longest T90 of a signal in one detector only that is called a particle "
        "hit (s): a hit or phosphorescence spike in one crystal is brief, while a longer "
        "signal in one detector is what a burst behind the other detectors gives",
    )
    sgr_max_t90_s: float = Field(
        1.0, gt=0, description="longest T90 of a soft-repeater-like burst (s)"
    )
    sgr_max_hardness: float = Field(
        0.1,
        gt=0,
        description="largest hard/soft net-count ratio of a soft-repeater-like burst "
        "(dimensionless, bands as stated in the hardness product)",
    )


@dataclass(frozen=True)
class CrudeClass:
    """Class (``short``/``long``/``particle``/``known_source``/``soft_repeater``), p_short, flags."""

    klass: str
    p_short: float
    t90: float
    flags: tuple[str, ...] = field(default_factory=tuple)
    catalog: str = "fermi_gbm"


def p_short(t90: float, t90_err: float = 0.0, mixture: LognormalMixture | None = None) -> float:
    """Probability that a burst of duration ``t90`` (s, with 1-sigma error) is short."""
    m = mixture or packaged_mixture()
    if not (np.isfinite(t90) and t90 > 0):
        raise ValueError("T90 must be positive and finite")
    if not (np.isfinite(t90_err) and t90_err > 0):
        return float(m.p_short(t90))
    # average the posterior over the measurement error in log10 T90 (Gauss-Hermite, 20 nodes)
    s = t90_err / (t90 * np.log(10.0))
    nodes, weights = np.polynomial.hermite_e.hermegauss(20)
    x = np.log10(t90) + s * nodes
    return float(np.sum(weights * m.p_short(10.0**x)) / np.sum(weights))


def _separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    r1, d1, r2, d2 = np.radians([ra1, dec1, ra2, dec2])
    c = np.sin(d1) * np.sin(d2) + np.cos(d1) * np.cos(d2) * np.cos(r1 - r2)
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def classify(
    t90: float,
    t90_err: float = 0.0,
    config: ClassificationConfig | None = None,
    *,
    hardness: float | None = None,
    detector_net_counts: dict[str, tuple[float, float]] | None = None,
    soft_band_significance: float | None = None,
    position: tuple[float, float, float] | None = None,
) -> CrudeClass:
    """Classify a trigger from its duration and whatever else is known.

    Parameters
    ----------
    t90, t90_err : float
        Duration and 1-sigma error (s).
    config : ClassificationConfig, optional
    hardness : float, optional
        Hard/soft net-count ratio.
    detector_net_counts : dict, optional
        Per detector ``(net counts, 1-sigma error)``.
    soft_band_significance : float, optional
        Significance (sigma) of the soft-band signal over the burst interval.
    position : tuple, optional
        ``(ra_deg, dec_deg, error_radius_deg)``.

    Returns
    -------
    CrudeClass
        ``klass`` is the first non-GRB flag raised (known_source, particle, soft_repeater),
        else ``short`` when ``p_short >= 0.5``, else ``long``.
    """
    cfg = config or ClassificationConfig()
    mixture = packaged_mixture(cfg.catalog)
    ps = p_short(t90, t90_err, mixture)
    flags: list[str] = []
    if position is not None:
        ra, dec, err = position
        for src in cfg.known_sources:
            sep = _separation_deg(ra, dec, src.ra_deg, src.dec_deg)
            if sep <= src.radius_deg + err:
                flags.append(f"known_source:{src.name} ({sep:.2f} deg)")
    particle = False
    if detector_net_counts and len(detector_net_counts) >= 2:
        sig = {k: (v[0] / v[1] if v[1] > 0 else 0.0) for k, v in detector_net_counts.items()}
        strong = [k for k, s in sig.items() if s > 5.0]
        weak = [k for k, s in sig.items() if s < 3.0]
        if len(strong) == 1 and len(weak) == len(sig) - 1:
            if t90 <= cfg.particle_one_detector_max_t90_s:
                particle = True
                flags.append(f"particle:signal in {strong[0]} only")
            else:
                # a GRB far from the detectors' axes (outside the ECLAIRs field) can light
                # one GRM detector only; its duration says it is not a hit in one crystal
                flags.append(
                    f"one_detector:signal in {strong[0]} only, T90 {t90:.3g} s is too long "
                    "for a particle hit"
                )
    if (
        t90 < cfg.particle_max_t90_s
        and soft_band_significance is not None
        and soft_band_significance < 3.0
    ):
        particle = True
        flags.append("particle:very short spike without soft-band signal")
    soft = hardness is not None and t90 < cfg.sgr_max_t90_s and hardness < cfg.sgr_max_hardness
    if soft:
        flags.append(f"soft_repeater:hardness {hardness:.3g} < {cfg.sgr_max_hardness}")
    if any(f.startswith("known_source") for f in flags):
        klass = "known_source"
    elif particle:
        klass = "particle"
    elif soft:
        klass = "soft_repeater"
    else:
        klass = "short" if ps >= 0.5 else "long"
    return CrudeClass(
        klass=klass, p_short=ps, t90=float(t90), flags=tuple(flags), catalog=cfg.catalog
    )
