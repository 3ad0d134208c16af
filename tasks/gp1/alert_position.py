"""The alert's best position and the Bayesian choice of the afterglow among GP1's transients.

Positions of one burst arrive one after the other (the ECLAIRs quick position QPO, the
X-band position PO, the MXT source list, a VT position...), each with an error radius at its
own confidence level. :class:`BestPosition` keeps, at each moment, the one with the smallest
error region, after converting every radius to a common confidence: the error region is
taken as a circular 2-D Gaussian of per-axis width ``sigma`` (systematics added in
quadrature), whose radius of containment ``P`` is ``r = sigma * sqrt(-2 ln(1 - P))`` (the
Rayleigh distribution of the separation; r90 = 2.146 sigma).

:func:`choose_afterglow` then gives each transient candidate of the sequence the posterior
probability that it is the afterglow. The unrelated variable sources of the field form a
Poisson process of surface density ``rho``; the afterglow, when it is among the candidates
(prior probability ``q``), lies at a Gaussian separation from the alert position. For
candidate ``i`` at separation ``d_i`` the odds against "no candidate is the afterglow" are::

    O_i = q / (1 - q) * G(d_i) / rho * F_i,   G(d) = exp(-d^2 / 2 s^2) / (2 pi s^2)

with ``s^2`` the alert's and the candidate's position variances summed, and ``F_i`` the
likelihood ratio of its measured decay index under the afterglow population against the
unrelated-variable population (1 when not measured). ``P_i = O_i / (1 + sum_j O_j)``; the
chosen afterglow is the most probable candidate. Every candidate keeps its probability, the
ones outside the error region too. The field's area and the number of candidates cancel out
of the odds (Poisson process), so the answer does not depend on the image size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import Field
from svomflow.config.base import StepConfig

__all__ = [
    "AfterglowChoice",
    "AlertPosition",
    "AssociationConfig",
    "BestPosition",
    "CandidateProbability",
    "TransientCandidate",
    "angular_separation_arcmin",
    "choose_afterglow",
    "radius_at",
    "sigma_from_radius",
]


def sigma_from_radius(radius: float, confidence: float) -> float:
    """Return the per-axis Gaussian width of a circular error region of ``radius`` at ``confidence``.

    ``confidence`` is the containment probability of the radius (0.9 for an r90).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return radius / math.sqrt(-2.0 * math.log1p(-confidence))


def radius_at(sigma: float, confidence: float) -> float:
    """Return the radius containing ``confidence`` of a circular Gaussian of per-axis ``sigma``."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return sigma * math.sqrt(-2.0 * math.log1p(-confidence))


def angular_separation_arcmin(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Return the great-circle separation of two positions (degrees in) in arcmin (haversine)."""
    r1, d1, r2, d2 = (math.radians(v) for v in (ra1, dec1, ra2, dec2))
    h = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h)))) * 60.0


class AlertPosition(StepConfig):
    """One announced position of a burst: where, how well, from which product.

    The radius is at the stated confidence (containment probability); ``systematic_arcmin``
    is a 1-sigma systematic per axis added in quadrature (0 when the radius includes it).
    """

    burst_id: str = Field(..., min_length=1, description="Burst / trigger identifier.")
    ra_deg: float = Field(..., ge=0.0, lt=360.0, description="[deg] right ascension (J2000).")
    dec_deg: float = Field(..., ge=-90.0, le=90.0, description="[deg] declination (J2000).")
    error_radius_arcmin: float = Field(
        ..., gt=0.0, description="[arcmin] error radius at `confidence`."
    )
    confidence: float = Field(
        0.9, gt=0.0, lt=1.0, description="Containment probability of the error radius."
    )
    systematic_arcmin: float = Field(
        0.0, ge=0.0, description="[arcmin] 1-sigma systematic per axis, added in quadrature."
    )
    source: str = Field(
        "", description="Where it comes from: product type and instrument (QPO_ECL, SRCLIST_MXT)."
    )
    product_id: str | None = Field(None, description="Products-database id of the product.")
    version: int | None = Field(None, ge=1, description="Version of the product.")
    link: str | None = Field(None, description="Link to the product (URL or path).")
    issued: datetime | None = Field(None, description="When the position was published (UTC).")

    @property
    def sigma_arcmin(self) -> float:
        """Per-axis 1-sigma width of the error region (systematics included), arcmin."""
        stat = sigma_from_radius(self.error_radius_arcmin, self.confidence)
        return math.hypot(stat, self.systematic_arcmin)

    def radius_arcmin(self, confidence: float = 0.9) -> float:
        """Return the error radius at ``confidence`` (systematics included), arcmin."""
        return radius_at(self.sigma_arcmin, confidence)

    @property
    def key(self) -> str:
        """Identity of the product the position comes from (newer versions replace older)."""
        return self.source or f"{self.ra_deg:.6f},{self.dec_deg:.6f}"

    def label(self) -> str:
        """Return a one-line description: source, version, position and r90."""
        v = f" v{self.version}" if self.version else ""
        return (
            f"{self.source or 'position'}{v} ({self.ra_deg:.5f}, {self.dec_deg:+.5f}) "
            f"r90 {self.radius_arcmin(0.9):.3g}'"
        )


@dataclass
class BestPosition:
    """The best position of one burst at each moment: the smallest error region so far.

    A newer version of the same product (same ``source``) replaces the older one even when
    it is larger (it corrects it); among the products, the smallest ``sigma`` wins.
    """

    burst_id: str
    current: dict[str, AlertPosition] = field(default_factory=dict)
    history: list[tuple[AlertPosition, bool]] = field(default_factory=list)

    def update(self, position: AlertPosition) -> bool:
        """Take a new position into account; return whether the best position changed.

        Positions of another burst, and older versions of a product already held, are
        ignored (recorded in ``history`` as not changing the best).
        """
        if position.burst_id != self.burst_id:
            self.history.append((position, False))
            return False
        held = self.current.get(position.key)
        if held is not None and (held.version or 0) > (position.version or 0):
            self.history.append((position, False))
            return False
        before = self.best
        self.current[position.key] = position
        changed = self.best != before
        self.history.append((position, changed))
        return changed

    @property
    def best(self) -> AlertPosition | None:
        """The position with the smallest error region (latest one on a tie), or None."""
        if not self.current:
            return None
        items = list(self.current.values())
        # reversed + min: on equal sigma the most recently received one wins
        return min(reversed(items), key=lambda p: p.sigma_arcmin)


class AssociationConfig(StepConfig):
    """Priors of the afterglow choice (labelled assumptions; see the module docstring)."""

    variable_density_per_arcmin2: float = Field(
        2e-3,
        gt=0.0,
        description="[1/arcmin2] surface density of unrelated variable sources detected in "
        "a GP1 difference within the sequence (assumption: flares, AGN, asteroids at "
        "R < 20, minutes to hours).",
    )
    prior_detected: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="Prior probability that the afterglow is among the candidates.",
    )
    afterglow_decay_mean: float = Field(
        1.0, description="Mean decay index alpha (F ~ t^-alpha) of early optical afterglows."
    )
    afterglow_decay_scatter: float = Field(
        0.5, gt=0.0, description="Scatter of the afterglows' decay index."
    )
    variable_decay_mean: float = Field(
        0.0, description="Mean apparent decay index of unrelated variables over the sequence."
    )
    variable_decay_scatter: float = Field(
        0.4, gt=0.0, description="Scatter of the unrelated variables' apparent decay index."
    )
    region_confidence: float = Field(
        0.9,
        gt=0.0,
        lt=1.0,
        description="Confidence of the error region a candidate is said to be inside.",
    )
    max_candidates: int = Field(
        20, ge=1, description="Most significant candidates weighed (light curves measured)."
    )


@dataclass(frozen=True)
class TransientCandidate:
    """A transient candidate of a sequence: position, significance and its decay index.

    ``decay_index``/``decay_error`` come from the candidate's forced-photometry light curve
    (None when fewer than two detections).
    """

    ra_deg: float
    dec_deg: float
    snr: float
    position_error_arcsec: float = 0.3
    decay_index: float | None = None
    decay_error: float | None = None
    index: int = -1


@dataclass(frozen=True)
class CandidateProbability:
    """One candidate's figures in the choice."""

    candidate: TransientCandidate
    separation_arcmin: float
    in_region: bool
    position_odds: float
    fading_factor: float
    probability: float


@dataclass(frozen=True)
class AfterglowChoice:
    """The choice: every candidate's probability, the chosen one, and P(none is the afterglow)."""

    position: AlertPosition
    candidates: tuple[CandidateProbability, ...]
    chosen: CandidateProbability | None
    p_none: float

    def by_index(self) -> dict[int, CandidateProbability]:
        """Return the candidates' figures by their ``index``."""
        return {c.candidate.index: c for c in self.candidates}


def _normal(x: float, mean: float, sd: float) -> float:
    return math.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def _fading_factor(c: TransientCandidate, cfg: AssociationConfig) -> float:
    """Likelihood ratio of the measured decay index: afterglow population / unrelated variables."""
    if c.decay_index is None or c.decay_error is None or not math.isfinite(c.decay_index):
        return 1.0
    err = max(float(c.decay_error), 0.0)
    sd_a = math.hypot(cfg.afterglow_decay_scatter, err)
    sd_v = math.hypot(cfg.variable_decay_scatter, err)
    la = _normal(c.decay_index, cfg.afterglow_decay_mean, sd_a)
    lv = _normal(c.decay_index, cfg.variable_decay_mean, sd_v)
    if lv <= 0.0:
        return 1e12 if la > 0 else 1.0
    return la / lv


def choose_afterglow(
    candidates: Sequence[TransientCandidate],
    position: AlertPosition,
    config: AssociationConfig | None = None,
) -> AfterglowChoice:
    """Return each candidate's probability of being the afterglow given the alert position.

    Parameters
    ----------
    candidates
        The sequence's transient candidates (any order; ``index`` identifies them).
    position
        The alert position used (the best one at the time).
    config
        Priors: density of unrelated variables, prior that the afterglow is detected, decay
        index populations, confidence of the "inside the region" flag.

    Returns
    -------
    AfterglowChoice
        Candidates sorted by decreasing probability; ``chosen`` the most probable one (None
        without candidates), ``p_none`` the probability that none is the afterglow.
    """
    cfg = config or AssociationConfig()
    prior_odds = cfg.prior_detected / (1.0 - cfg.prior_detected)
    region = position.radius_arcmin(cfg.region_confidence)
    rows = []
    for c in candidates:
        d = angular_separation_arcmin(position.ra_deg, position.dec_deg, c.ra_deg, c.dec_deg)
        s2 = position.sigma_arcmin**2 + (c.position_error_arcsec / 60.0) ** 2
        g = math.exp(-0.5 * d * d / s2) / (2 * math.pi * s2)
        pos_odds = g / cfg.variable_density_per_arcmin2
        fade = _fading_factor(c, cfg)
        rows.append((c, d, d <= region, pos_odds, fade, prior_odds * pos_odds * fade))
    total = 1.0 + sum(r[5] for r in rows)
    out = tuple(
        sorted(
            (
                CandidateProbability(c, d, inside, po, fa, odds / total)
                for c, d, inside, po, fa, odds in rows
            ),
            key=lambda r: -r.probability,
        )
    )
    return AfterglowChoice(position, out, out[0] if out else None, 1.0 / total)


def association_cards(
    position: AlertPosition | None, choice: AfterglowChoice | None
) -> list[tuple[str, object, str]]:
    """Return the header cards recording which alert position chose the transient.

    ``ALRTPOS`` is always there (False: the most significant candidate was taken).
    """
    if position is None:
        return [("ALRTPOS", False, "an alert position guided the choice")]
    cards: list[tuple[str, object, str]] = [
        ("ALRTPOS", True, "an alert position guided the choice"),
        ("ALRTSRC", position.source or "unknown", "product the alert position comes from"),
        ("ALRTVER", position.version or 0, "its version (0: unknown)"),
        ("ALRTPID", str(position.product_id or "")[:68], "its products-database id"),
        ("ALRTRA", round(position.ra_deg, 6), "[deg] alert position right ascension"),
        ("ALRTDEC", round(position.dec_deg, 6), "[deg] alert position declination"),
        ("ALRTR90", round(position.radius_arcmin(0.9), 4), "[arcmin] its 90 % error radius"),
    ]
    if choice is not None:
        cards.append(("NCANDW", len(choice.candidates), "candidates weighed"))
        cards.append(("PNONE", round(choice.p_none, 4), "P(no candidate is the afterglow)"))
    if choice is not None and choice.chosen is not None:
        c = choice.chosen
        cards += [
            ("PASSOC", round(c.probability, 4), "P(the transient is the afterglow)"),
            ("ALRTSEP", round(c.separation_arcmin, 4), "[arcmin] transient - alert position"),
            ("INREGION", bool(c.in_region), "transient inside the alert's error region"),
        ]
    return cards
