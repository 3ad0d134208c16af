"""The validation gate of the science database: one product against its type's rules.

Pure: the candidate's header keywords and announced key values and the reference positions
of the same burst come in as data objects, a :class:`Verdict` goes out. The delivery flow
(:mod:`svomflow.flows.science_delivery`) reads them and records the outcome.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from svomflow.tasks.step import step
from svomflow.tasks.validation.rules import Consistency, ScienceValidationConfig, TypeRules

__all__ = [
    "Candidate",
    "SkyCircle",
    "Verdict",
    "angular_separation_deg",
    "judge",
    "validate_product",
]

Scalar = float | int | str | bool


@dataclass(frozen=True)
class SkyCircle:
    """A position with its error circle (degrees), and the product it comes from."""

    ra_deg: float
    dec_deg: float
    radius_deg: float
    type_code: str = ""
    instrument: str = ""
    product_id: str = ""


@dataclass(frozen=True)
class Candidate:
    """A product version offered to the science database."""

    product_id: str
    type_code: str
    instrument: str
    obs_id: str
    version: int
    keywords: Mapping[str, Scalar] = field(default_factory=dict)
    values: Mapping[str, Scalar] = field(default_factory=dict)
    position: SkyCircle | None = None


@dataclass(frozen=True)
class Verdict:
    """Delivered (possibly with flags) or refused, with the reasons."""

    product_id: str
    accepted: bool
    reasons: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()


def angular_separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Return the great-circle distance between two directions (Vincenty, degrees)."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    dra = r2 - r1
    num = math.hypot(
        math.cos(d2) * math.sin(dra),
        math.cos(d1) * math.sin(d2) - math.sin(d1) * math.cos(d2) * math.cos(dra),
    )
    den = math.sin(d1) * math.sin(d2) + math.cos(d1) * math.cos(d2) * math.cos(dra)
    return math.degrees(math.atan2(num, den))


# value names that read the candidate's position (the others: key values, then keywords)
_POSITION_VALUES = {"ra_deg": "ra_deg", "dec_deg": "dec_deg", "error_radius_deg": "radius_deg"}


def _value(c: Candidate, name: str) -> Scalar | None:
    if name == "position":
        return "present" if c.position is not None else None
    if name in _POSITION_VALUES:
        return getattr(c.position, _POSITION_VALUES[name]) if c.position is not None else None
    if name in c.values:
        return c.values[name]
    return c.keywords.get(name)


def _completeness(c: Candidate, rules: TypeRules) -> list[str]:
    out = [f"keyword {k} missing" for k in rules.required_keywords if k not in c.keywords]
    out += [f"value {v} missing" for v in rules.required_values if _value(c, v) is None]
    return out


def _ranges(c: Candidate, rules: TypeRules) -> list[str]:
    out = []
    for name, (low, high) in rules.ranges.items():
        v = _value(c, name)
        if v is None:
            continue  # completeness reports what is required
        if isinstance(v, bool) or not isinstance(v, int | float):
            out.append(f"{name} = {v!r} is not a number")
        elif not math.isfinite(v):
            out.append(f"{name} is not finite")
        elif (low is not None and v < low) or (high is not None and v > high):
            lo = "-inf" if low is None else f"{low:g}"
            hi = "+inf" if high is None else f"{high:g}"
            out.append(f"{name} = {v:g} outside [{lo}, {hi}]")
    return out


def _inside(c: Candidate, rule: Consistency, refs: Sequence[SkyCircle]) -> str | None:
    """Return why the check fails (None when it holds)."""
    if c.position is None:
        return "no position to check"
    usable = [
        r for r in refs if r.type_code in rule.reference_types and r.product_id != c.product_id
    ]
    if not usable:
        return f"no {'/'.join(rule.reference_types)} position of {c.obs_id} to check against"
    ref = min(usable, key=lambda r: r.radius_deg)
    sep = angular_separation_deg(c.position.ra_deg, c.position.dec_deg, ref.ra_deg, ref.dec_deg)
    limit = ref.radius_deg * rule.margin
    if sep <= limit:
        return None
    return (
        f"position {sep * 60:.2f}' from the {ref.type_code} {ref.instrument} position, outside "
        f"its error radius {limit * 60:.2f}'"
    )


def validate_product(
    candidate: Candidate, references: Sequence[SkyCircle], config: ScienceValidationConfig
) -> Verdict:
    """Judge one product against its type's rules: completeness, ranges, consistency.

    Parameters
    ----------
    candidate
        The product version, its header keywords and announced key values.
    references
        Positions of other products of the same burst/observation (consistency checks).
    config
        The rules per type; a type without rules is refused (the delivery offers only
        types that have rules).
    """
    rules = config.types.get(candidate.type_code)
    if rules is None:
        return Verdict(candidate.product_id, False, (f"no rules for {candidate.type_code}",))
    reasons = _completeness(candidate, rules) + _ranges(candidate, rules)
    flags: list[str] = []
    for rule in rules.consistency:
        why = _inside(candidate, rule, references)
        if why is None:
            continue
        if rule.action == "refuse" and not why.startswith("no "):
            reasons.append(why)
        else:  # a failed check flagged, or nothing to check against
            flags.append(why)
    return Verdict(candidate.product_id, not reasons, tuple(reasons), tuple(flags))


@step(name="science_validation", config=ScienceValidationConfig)
def judge(
    candidates: Sequence[Candidate],
    positions: Mapping[str, Sequence[SkyCircle]],
    *,
    config: ScienceValidationConfig,
) -> list[Verdict]:
    """Judge every candidate against the rules, with the positions of its burst (by obs id).

    A product of a follow-up sequence (its obs id is the sequence's) names its burst in a
    header keyword (``burst_keywords``, e.g. ``TRIGID``): that burst's positions count too.
    """
    out = []
    for c in candidates:
        bursts = {c.obs_id} | {
            str(c.keywords[k]).strip() for k in config.burst_keywords if k in c.keywords
        }
        refs = [r for b in sorted(bursts) for r in positions.get(b, ())]
        out.append(validate_product(c, refs, config))
    return out
