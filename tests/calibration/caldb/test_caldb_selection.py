"""HEASARC selection rules against a hand-built index: wildcards, boundaries, dates, quality, ties."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from astropy.time import Time
from svomflow.calibration.caldb import CaldbEntry, choose_entry
from svomflow.calibration.caldb.boundaries import normalize_boundaries
from svomflow.errors import CalibrationNotFoundError

UTC = dt.UTC


def entry(
    id_: int,
    valid_from: str,
    *,
    codename: str = "GAIN",
    instrument: str = "ECLAIRS",
    telescope: str = "SVOM",
    detector: str = "NONE",
    filter: str = "NONE",
    quality: int = 0,
    boundaries=(),
    registered_version: int | None = None,
) -> CaldbEntry:
    return CaldbEntry(
        id=id_,
        telescope=telescope,
        instrument=instrument,
        detector=detector,
        filter=filter,
        codename=codename,
        boundaries=normalize_boundaries(boundaries),
        valid_from=dt.datetime.fromisoformat(valid_from).replace(tzinfo=UTC),
        quality=quality,
        path=Path(f"/cal/{id_}.fits"),
        sha256=None,
        registered_version=registered_version if registered_version is not None else id_,
    )


def pick(entries, time, **kw):
    kw.setdefault("instrument", "ECLAIRS")
    bv = kw.pop("bv", {})
    return choose_entry(entries, kw.pop("codename", "GAIN"), time=time, boundary_values=bv, **kw).id


INDEX = [
    entry(1, "2024-01-01"),
    entry(2, "2024-06-01"),
    entry(3, "2025-01-01"),
]


def test_validity_before_first_between_and_after():
    with pytest.raises(
        CalibrationNotFoundError, match="earliest candidate is valid from 2024-01-01"
    ):
        pick(INDEX, "2023-12-31T23:59:59")
    assert pick(INDEX, "2024-01-01T00:00:00") == 1  # at the validity start itself
    assert pick(INDEX, "2024-05-31T23:59:59.999") == 1
    assert pick(INDEX, "2024-06-01") == 2
    assert pick(INDEX, "2024-12-01") == 2
    assert pick(INDEX, "2031-01-01") == 3


def test_time_types_agree():
    t = "2024-07-01T12:00:00"
    expected = pick(INDEX, t)
    assert pick(INDEX, Time(t, scale="utc")) == expected
    assert pick(INDEX, Time(t, scale="utc").tt) == expected  # converted back to UTC
    assert pick(INDEX, dt.datetime(2024, 7, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == 2
    with pytest.raises(ValueError, match="ambiguous"):
        pick(INDEX, 60400.0)


def test_quality_nonzero_is_ignored():
    idx = [*INDEX[:2], entry(3, "2025-01-01", quality=5)]
    assert pick(idx, "2031-01-01") == 2
    with pytest.raises(CalibrationNotFoundError, match="0 with quality 0"):
        pick([entry(1, "2024-01-01", quality=1)], "2025-01-01")


def test_tie_goes_to_most_recently_registered():
    idx = [
        entry(7, "2024-06-01", registered_version=9),
        entry(8, "2024-06-01", registered_version=4),
    ]
    assert pick(idx, "2024-07-01") == 7
    idx = [
        entry(7, "2024-06-01", registered_version=4),
        entry(8, "2024-06-01", registered_version=9),
    ]
    assert pick(idx, "2024-07-01") == 8


def test_none_is_a_wildcard_on_both_sides():
    idx = [
        entry(1, "2024-01-01", detector="NONE"),
        entry(2, "2024-02-01", detector="D1"),
        entry(3, "2024-03-01", detector="D2", filter="OPEN"),
    ]
    # Request NONE: any detector matches, so the newest (3) wins.
    assert pick(idx, "2024-04-01") == 3
    # Request D1: entry 3 (D2) is excluded, entry 2 (D1) is newest.
    assert pick(idx, "2024-04-01", detector="D1") == 2
    # Request D3: only the NONE entry matches.
    assert pick(idx, "2024-04-01", detector="d3") == 1
    # Filter: stored NONE matches any requested filter; stored OPEN needs OPEN or NONE.
    assert pick(idx, "2024-04-01", detector="D2", filter="BLOCKED") == 1
    assert pick(idx, "2024-04-01", detector="D2", filter="open") == 3
    assert pick(idx, "2024-04-01", detector="", filter=None) == 3


def test_telescope_codename_instrument_must_match():
    idx = [
        entry(1, "2024-01-01"),
        entry(2, "2024-02-01", telescope="OTHER"),
        entry(3, "2024-03-01", codename="PSF"),
        entry(4, "2024-04-01", instrument="GRM"),
    ]
    assert pick(idx, "2025-01-01") == 2  # telescope not given: any
    assert pick(idx, "2025-01-01", telescope="svom") == 1
    assert pick(idx, "2025-01-01", codename="psf") == 3
    assert pick(idx, "2025-01-01", instrument="grm") == 4
    with pytest.raises(CalibrationNotFoundError, match="0 with this code name"):
        pick(idx, "2025-01-01", codename="ARF")


def test_boundaries_select_the_right_range():
    idx = [
        entry(1, "2024-01-01", boundaries=["ENERG(4-20)keV"]),
        entry(2, "2024-01-01", boundaries=["ENERG(20-150)keV"]),
        entry(3, "2023-01-01", boundaries=["ENERG(4-150)keV", "MODE(SLOW)"]),
        entry(4, "2022-01-01", boundaries=["TEMP(-30--10)C"]),
    ]
    assert pick(idx, "2025-01-01", bv={"energ": 10}) == 1
    assert pick(idx, "2025-01-01", bv={"energ": 100}) == 2
    # 20 keV is in both ranges (inclusive): the tie goes to the later registration.
    assert pick(idx, "2025-01-01", bv={"energ": 20}) == 2
    # A file without a MODE boundary is valid for every mode (HEASARC), so 2 still wins...
    assert pick(idx, "2025-01-01", bv={"energ": 100, "mode": "slow"}) == 2
    # ...but before 2 is valid, the mode decides between 3 (SLOW only) and 4 (any mode).
    assert pick(idx, "2023-06-01", bv={"energ": 100, "mode": "slow"}) == 3
    assert pick(idx, "2023-06-01", bv={"energ": 100, "mode": "FAST"}) == 4
    assert pick(idx, "2025-01-01", bv={"energ": 300, "temp": -20}) == 4
    with pytest.raises(CalibrationNotFoundError, match="boundaries hold for ENERG=300, TEMP=0"):
        pick(idx, "2025-01-01", bv={"energ": 300, "temp": 0})
