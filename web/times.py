"""Times in query strings: timezone-aware UTC, inside the range the site can compute with.

Year 1 or 9999 parse as datetimes, but subtracting a period from them (the plot window) or
converting them to UTC overflows: such requests are refused with 422, not failed with 500.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["EARLIEST", "LATEST", "QueryTime", "in_range"]

#: The first and last times a query may name (well beyond any mission's data).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def in_range(value: datetime) -> datetime:
    """Return ``value`` in UTC (naive means UTC); refuse it outside 1900-2200."""
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range (1900-2200)") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError("time out of range (1900-2200)")
    return utc


#: A query-string time, checked by :func:`in_range`.
QueryTime = Annotated[datetime, AfterValidator(in_range)]
