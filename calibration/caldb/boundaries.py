"""HEASARC CALDB boundary expressions: ``ENERG(10-100)keV``, ``TEMP(-100)C``, ``MODE(FAST)``.

A calibration file may be valid only for part of a parameter space (an energy range, a
temperature, a readout mode). HEASARC records this in the index column ``CAL_CBD`` as up to
nine strings of the form ``NAME(value)unit`` or ``NAME(lo-hi)unit`` (OGIP memo CAL/GEN/92-011);
``NONE`` fills unused slots. A value that is not a number is compared as a string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "MAX_BOUNDARIES",
    "MAX_BOUNDARY_CHARS",
    "Boundary",
    "boundaries_hold",
    "normalize_boundaries",
    "parse_boundary",
]

#: HEASARC's ``CAL_CBD`` column holds nine strings of 70 characters.
MAX_BOUNDARIES = 9
MAX_BOUNDARY_CHARS = 70

_NUM = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_EXPR = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*\((.*)\)\s*([^()]*?)\s*$")
_RANGE = re.compile(rf"^\s*({_NUM})\s*-\s*({_NUM})\s*$")
_SINGLE = re.compile(rf"^\s*({_NUM})\s*$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Boundary:
    """One boundary condition of a calibration file.

    Attributes
    ----------
    name
        Parameter name, upper case (``ENERG``, ``TEMP``).
    low, high
        Inclusive numeric range; equal for a single value; ``None`` for a string value.
    text
        The string value when the boundary is not numeric (compared case-insensitively).
    unit
        Unit as written after the parentheses (informative: values are compared as given).
    """

    name: str
    low: float | None = None
    high: float | None = None
    text: str | None = None
    unit: str = ""

    @property
    def numeric(self) -> bool:
        """Whether the boundary is a numeric value or range."""
        return self.low is not None

    def to_string(self) -> str:
        """Return the boundary in HEASARC ``CAL_CBD`` syntax."""
        if self.numeric:
            assert self.low is not None and self.high is not None
            inner = (
                _fmt(self.low) if self.low == self.high else f"{_fmt(self.low)}-{_fmt(self.high)}"
            )
        else:
            inner = self.text or ""
        return f"{self.name}({inner}){self.unit}"

    def holds(self, value: object) -> bool:
        """Return whether ``value`` satisfies this boundary (inclusive range, or equality)."""
        if self.numeric:
            try:
                v = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return False
            assert self.low is not None and self.high is not None
            return self.low <= v <= self.high
        return str(value).strip().upper() == (self.text or "").upper()

    def __str__(self) -> str:
        return self.to_string()


def _fmt(x: float) -> str:
    # Integers print without a trailing ".0", as in HEASARC indices (ENERG(10-100)keV).
    return str(int(x)) if x == int(x) and abs(x) < 1e15 else repr(x)


def parse_boundary(expr: str) -> Boundary | None:
    """Parse one ``CAL_CBD`` string; return ``None`` for ``NONE`` or an empty slot.

    Raises
    ------
    ValueError
        If the string is not of the form ``NAME(value)unit`` or ``NAME(lo-hi)unit``, or a
        range has its low end above its high end.
    """
    text = str(expr).strip()
    if not text or text.upper() == "NONE":
        return None
    if len(text) > MAX_BOUNDARY_CHARS:
        raise ValueError(f"boundary {text!r} is longer than {MAX_BOUNDARY_CHARS} characters")
    m = _EXPR.match(text)
    if not m:
        raise ValueError(
            f"boundary {text!r} is not of the form NAME(value)unit or NAME(low-high)unit"
        )
    name, inner, unit = m.group(1).upper(), m.group(2).strip(), m.group(3)
    if not inner:
        raise ValueError(f"boundary {text!r} has an empty value")
    r = _RANGE.match(inner)
    if r:
        lo, hi = float(r.group(1)), float(r.group(2))
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise ValueError(f"boundary {text!r}: low end {lo} is above high end {hi}")
        return Boundary(name, lo, hi, None, unit)
    s = _SINGLE.match(inner)
    if s:
        v = float(s.group(1))
        return Boundary(name, v, v, None, unit)
    if "(" in inner or ")" in inner:
        raise ValueError(f"boundary {text!r} has nested parentheses")
    return Boundary(name, None, None, inner, unit)


def _from_mapping_item(name: str, spec: object) -> Boundary:
    if not _NAME.match(str(name)):
        raise ValueError(f"boundary parameter name {name!r} is not a valid identifier")
    name = str(name).upper()
    unit = ""
    if isinstance(spec, (tuple, list)):
        if len(spec) == 3:
            lo, hi, unit = spec
        elif len(spec) == 2:
            lo, hi = spec
        else:
            raise ValueError(f"boundary {name}: expected (low, high) or (low, high, unit)")
        b = parse_boundary(f"{name}({float(lo)!r}-{float(hi)!r}){unit}")
    elif isinstance(spec, (int, float)) and not isinstance(spec, bool):
        b = parse_boundary(f"{name}({float(spec)!r})")
    elif isinstance(spec, str):
        b = parse_boundary(f"{name}({spec})")
    else:
        raise ValueError(f"boundary {name}: unsupported value {spec!r}")
    assert b is not None
    return b


def normalize_boundaries(
    boundaries: Iterable[str | Boundary] | Mapping[str, object] | None,
) -> tuple[Boundary, ...]:
    """Turn boundary strings, Boundary objects or a mapping into a checked tuple.

    A mapping takes ``{"ENERG": (10, 100, "keV"), "TEMP": -100, "MODE": "FAST"}``.

    Raises
    ------
    ValueError
        On a malformed expression, more than nine boundaries, or a parameter named twice.
    """
    if boundaries is None:
        return ()
    out: list[Boundary] = []
    if isinstance(boundaries, Mapping):
        out = [_from_mapping_item(k, v) for k, v in boundaries.items()]
    else:
        if isinstance(boundaries, str):
            boundaries = [boundaries]
        for item in boundaries:
            b = item if isinstance(item, Boundary) else parse_boundary(item)
            if b is not None:
                out.append(b)
    names = [b.name for b in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"boundary parameter(s) given more than once: {', '.join(dup)}")
    if len(out) > MAX_BOUNDARIES:
        raise ValueError(f"at most {MAX_BOUNDARIES} boundaries fit in CAL_CBD, got {len(out)}")
    for b in out:
        if len(b.to_string()) > MAX_BOUNDARY_CHARS:
            raise ValueError(f"boundary {b} is longer than {MAX_BOUNDARY_CHARS} characters")
    return tuple(out)


def boundaries_hold(boundaries: Iterable[Boundary], values: Mapping[str, object]) -> bool:
    """Return whether every boundary whose parameter appears in ``values`` holds.

    As in HEASARC's CALDB, a parameter the caller does not give does not restrict the
    choice, and a value for a parameter that the file does not bound matches.
    """
    upper = {str(k).upper(): v for k, v in values.items()}
    return all(b.holds(upper[b.name]) for b in boundaries if b.name in upper)
