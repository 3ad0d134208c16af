"""Parsing and matching of HEASARC boundary expressions (CAL_CBD)."""

from __future__ import annotations

import pytest
from svomflow.calibration.caldb.boundaries import (
    Boundary,
    boundaries_hold,
    normalize_boundaries,
    parse_boundary,
)


@pytest.mark.parametrize(
    ("text", "name", "low", "high", "unit"),
    [
        ("ENERG(10-100)keV", "ENERG", 10.0, 100.0, "keV"),
        ("TEMP(-100)C", "TEMP", -100.0, -100.0, "C"),
        ("TEMP(-100--50)C", "TEMP", -100.0, -50.0, "C"),
        ("rate(1e-5-2.5E-3)", "RATE", 1e-5, 2.5e-3, ""),
        ("THETA( 0.5 - 1.5 )deg", "THETA", 0.5, 1.5, "deg"),
    ],
)
def test_numeric_boundaries_parse(text, name, low, high, unit):
    b = parse_boundary(text)
    assert (b.name, b.low, b.high, b.unit) == (name, low, high, unit)
    # The formatted string parses back to the same boundary.
    assert parse_boundary(b.to_string()) == b


def test_string_boundary_and_none():
    b = parse_boundary("MODE(FAST)")
    assert b == Boundary("MODE", None, None, "FAST", "")
    assert b.holds("fast") and not b.holds("SLOW")
    assert parse_boundary("NONE") is None
    assert parse_boundary("  ") is None


@pytest.mark.parametrize("bad", ["ENERG", "ENERG(100-10)keV", "(1-2)", "E((1))", "ENERG()"])
def test_malformed_boundaries_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_boundary(bad)


def test_range_is_inclusive_and_values_coerced():
    b = parse_boundary("ENERG(10-100)keV")
    assert b.holds(10) and b.holds(100.0) and b.holds("55")
    assert not b.holds(9.999) and not b.holds(100.001) and not b.holds("abc")


def test_mapping_form_and_limits():
    got = normalize_boundaries({"energ": (4, 150, "keV"), "temp": -20, "mode": "FAST"})
    assert [b.to_string() for b in got] == ["ENERG(4-150)keV", "TEMP(-20)", "MODE(FAST)"]
    with pytest.raises(ValueError, match="at most 9"):
        normalize_boundaries([f"P{i}({i})" for i in range(10)])
    with pytest.raises(ValueError, match="more than once"):
        normalize_boundaries(["E(1-2)", "e(3-4)"])


def test_unmentioned_parameters_do_not_restrict():
    bounds = normalize_boundaries(["ENERG(10-100)keV", "MODE(FAST)"])
    assert boundaries_hold(bounds, {})
    assert boundaries_hold(bounds, {"energ": 50, "other": 1})
    assert not boundaries_hold(bounds, {"energ": 50, "mode": "SLOW"})
    assert not boundaries_hold(bounds, {"ENERG": 150})
