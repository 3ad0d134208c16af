"""MXT L1 events: read and validate pass files, merge and de-duplicate passes, build GTIs.

The GTI of the merged observation is the intersection of three conditions: the instrument
was taking data (the union of the pass GTIs), the attitude is known and the target is not
occulted by the Earth (attitude file), and the spacecraft is outside the SAA (SAA file of the
week). Every event removed on the way is counted, by cause; the counts go to the log and to
the product header (:meth:`MergedEvents.header_cards`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from svomflow.errors import InputDataError
from svomflow.products.ogip import reading_file

__all__ = [
    "ORBIT_PERIOD_S",
    "MergedEvents",
    "PassData",
    "attitude_gti",
    "complement",
    "in_intervals",
    "intersect",
    "label_gaps",
    "merge_passes",
    "mission_time_to_utc",
    "pass_start",
    "read_attitude",
    "read_pass",
    "read_saa",
    "union",
]

log = logging.getLogger(__name__)

EVENT_COLUMNS = ("TIME", "FRAME", "RAWX", "RAWY", "PHA")


# --- interval algebra (arrays of shape (N, 2), half-open [start, stop)) ----------------------


def union(iv: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return the sorted union of intervals (overlapping or touching ones merged)."""
    iv = np.asarray(iv, dtype=np.float64).reshape(-1, 2)
    iv = iv[iv[:, 1] > iv[:, 0]]
    if len(iv) == 0:
        return iv
    iv = iv[np.argsort(iv[:, 0])]
    out = [list(iv[0])]
    for a, b in iv[1:]:
        if a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return np.array(out)


def intersect(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return the intersection of two interval sets."""
    a, b = union(a), union(b)
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i, 0], b[j, 0]), min(a[i, 1], b[j, 1])
        if hi > lo:
            out.append((lo, hi))
        if a[i, 1] < b[j, 1]:
            i += 1
        else:
            j += 1
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def complement(iv: NDArray[np.float64], t0: float, t1: float) -> NDArray[np.float64]:
    """Return the parts of [t0, t1) not covered by ``iv``."""
    out = []
    cur = t0
    for a, b in union(iv):
        if b <= cur:
            continue
        if a >= t1:
            break
        if a > cur:
            out.append((cur, a))
        cur = b
    if cur < t1:
        out.append((cur, t1))
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def in_intervals(t: NDArray[np.float64], iv: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Return whether each time lies inside the union of ``iv``."""
    iv = union(iv)
    t = np.asarray(t, dtype=np.float64)
    if len(iv) == 0:
        return np.zeros(t.shape, dtype=bool)
    k = np.searchsorted(iv[:, 0], t, side="right") - 1
    ok = k >= 0
    ok[ok] = t[ok] < iv[k[ok], 1]
    return ok


# --- readers ------------------------------------------------------------------------------


@dataclass
class PassData:
    """One L1 pass file: its pixel events, its GTI, and the rows dropped as corrupted.

    ``gti_from_events`` says the file had no GTI extension and its GTI is the span of its
    events (a guess the run's flags must show).
    """

    path: str
    events: dict[str, NDArray[Any]]
    gti: NDArray[np.float64]
    n_corrupted: int
    header: dict[str, Any]
    n_bad_gti: int = 0
    gti_from_events: bool = False


def _check_instrument(path: str | Path, header: fits.Header, instrument: Any) -> None:
    got = str(header.get("INSTRUME", "")).strip().upper()
    want = str(instrument.instrument).upper()
    if got != want:
        raise InputDataError(
            f"{path}: event file is from instrument {got or '(none)'!r}, not {want!r}"
        )


def _usable_gti(path: str | Path, gti: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return the GTI rows with finite bounds and START <= STOP; refuse a GTI with none left.

    A damaged row is dropped with a warning rather than the pass, as for damaged event rows;
    a GTI table with no usable row is a damaged file, not an observation without time.
    """
    ok = np.all(np.isfinite(gti), axis=1) & (gti[:, 0] <= gti[:, 1])
    if gti.shape[0] and not ok.any():
        raise InputDataError(f"{path}: no GTI row has finite bounds with START <= STOP")
    if not ok.all():
        log.warning(
            "%s: dropped %d GTI rows (non-finite bounds or START after STOP)",
            path,
            int((~ok).sum()),
        )
    return gti[ok]


def read_pass(path: str | Path, instrument: Any) -> PassData:
    """Read one L1 pass file; drop corrupted rows (NaN time, pixel or PHA out of range).

    Raises
    ------
    InputDataError
        If the file is unreadable, from another instrument, or lacks a column.
    """
    kw = instrument.header_keywords
    nx, ny = int(instrument.get("ccd.npix_x")), int(instrument.get("ccd.npix_y"))
    # a damaged file (truncated gzip, text in a numeric column, a bad pointing keyword) is
    # one InputDataError naming it, never a traceback from astropy or numpy
    with reading_file(path):
        with fits.open(path) as hdul:
            if "EVENTS" not in hdul:
                raise InputDataError(f"{path}: no EVENTS extension")
            h = hdul["EVENTS"].header
            _check_instrument(path, h, instrument)
            data = hdul["EVENTS"].data
            if data is None:
                raise InputDataError(f"{path}: EVENTS has no table")
            names = {c.upper() for c in data.columns.names}
            ev = {}
            for col in EVENT_COLUMNS:
                fname = kw.get(col.lower(), col)
                if fname.upper() not in names:
                    raise InputDataError(f"{path}: EVENTS lacks the column {fname}")
                ev[col] = np.asarray(data[fname])
                if ev[col].dtype.kind not in "iuf":  # text where numbers belong
                    raise InputDataError(f"{path}: EVENTS column {fname} is not numeric")
            gti = (
                np.column_stack([hdul["GTI"].data["START"], hdul["GTI"].data["STOP"]]).astype(float)
                if "GTI" in hdul
                else None
            )
            header = {k: h[k] for k in ("TSTART", "TSTOP", "FRAMETIM", "PASSID") if k in h}
            for key in ("ra_pointing", "dec_pointing", "roll"):
                name = kw.get(key)
                if name and name in h:
                    header[key] = float(h[name])
    time = ev["TIME"].astype(np.float64)
    good = np.isfinite(time)
    good &= (ev["RAWX"] >= 0) & (ev["RAWX"] < nx) & (ev["RAWY"] >= 0) & (ev["RAWY"] < ny)
    good &= ev["PHA"] >= 0
    n_bad = int((~good).sum())
    if n_bad:
        log.warning(
            "%s: dropped %d corrupted rows (NaN time or pixel/PHA out of range)", path, n_bad
        )
    events = {
        "TIME": time[good],
        "FRAME": ev["FRAME"][good].astype(np.int64),
        "RAWX": ev["RAWX"][good].astype(np.int64),
        "RAWY": ev["RAWY"][good].astype(np.int64),
        "PHA": ev["PHA"][good].astype(np.int64),
    }
    n_gti = 0 if gti is None else gti.shape[0]
    from_events = gti is None  # no GTI extension (an empty one is a damaged file, not this)
    if gti is not None:
        gti = _usable_gti(path, gti)
    if gti is None:
        if events["TIME"].size == 0:
            raise InputDataError(f"{path}: no GTI extension and no events")
        gti = np.array([[events["TIME"].min(), events["TIME"].max()]])
        log.warning("%s: no GTI extension; using the span of the events", path)
    n_bad_gti = n_gti - gti.shape[0] if n_gti else 0
    return PassData(str(path), events, gti, n_bad, header, n_bad_gti, from_events)


def pass_start(path: str | Path, instrument: Any) -> float | None:
    """Return the start of a pass file (mission s) from its headers: the first GTI start.

    A file without a GTI extension starts at its first good event (as :func:`read_pass`
    builds its GTI); an empty GTI gives None (the pass holds no good time).

    Raises
    ------
    InputDataError
        If the file is unreadable, from another instrument, or has neither GTI nor events.
    """
    with reading_file(path), fits.open(path) as hdul:
        if "EVENTS" not in hdul:
            raise InputDataError(f"{path}: no EVENTS extension")
        _check_instrument(path, hdul["EVENTS"].header, instrument)
        if "GTI" in hdul:
            start = np.asarray(hdul["GTI"].data["START"], dtype=np.float64)
            return float(start[0]) if start.size else None
    return float(read_pass(path, instrument).gti[0, 0])


def mission_time_to_utc(t: float, mjdref: float) -> str:
    """Return the ISO UTC date of a mission time (TT seconds since ``mjdref``).

    Raises
    ------
    InputDataError
        A time with no calendar date (an event time of 1e239 s from a damaged file,
        mxt-057 of the corpus: ERFA's "unacceptable date" was a traceback).
    """
    import erfa
    from astropy.time import Time

    try:
        return str(Time(mjdref + t / 86400.0, format="mjd", scale="tt").utc.isot)
    except (erfa.ErfaError, ValueError, OverflowError) as exc:
        raise InputDataError(
            f"mission time {t:.6g} s (MJDREF {mjdref:g}) has no UTC date: the input times "
            f"are damaged ({exc})"
        ) from None


def read_attitude(path: str | Path) -> dict[str, NDArray[Any]]:
    """Read the attitude file (ATTITUDE: TIME, RA, DEC, ROLL, optional EARTH flag)."""
    with reading_file(path):
        with fits.open(path) as hdul:
            if "ATTITUDE" not in hdul:
                raise InputDataError(f"{path}: no ATTITUDE extension")
            d = hdul["ATTITUDE"].data
            h = hdul["ATTITUDE"].header
            out = {c: np.asarray(d[c], dtype=np.float64) for c in ("TIME", "RA", "DEC", "ROLL")}
            names = {c.upper() for c in d.columns.names}
            out["EARTH"] = (
                np.asarray(d["EARTH"], dtype=np.int64)
                if "EARTH" in names
                else np.zeros(len(d), np.int64)
            )
            step = float(h.get("TIMESTEP", np.median(np.diff(out["TIME"])) if len(d) > 1 else 1.0))
            out["TIMESTEP"] = np.array(step)
    # a NaN attitude would point the sky transform anywhere without a word
    for c in ("TIME", "RA", "DEC", "ROLL"):
        if not np.all(np.isfinite(out[c])):
            raise InputDataError(f"{path}: attitude column {c} has NaN or infinite values")
    if not (np.isfinite(step) and step > 0):
        raise InputDataError(f"{path}: attitude TIMESTEP must be a positive number (got {step})")
    # sorting would hide a damaged file: a TIME column out of order (reversed alone, the
    # pointings left in place) paired each pointing with another time (mxt-028, unflagged)
    if np.any(np.diff(out["TIME"]) <= 0):
        raise InputDataError(f"{path}: attitude TIME values are not strictly increasing")
    return out


#: SVOM's orbital period (625 km circular orbit, SCIENCE.md: 2 pi sqrt(a^3 / GM) with
#: a = 7003 km). The track leaves the SAA once an orbit, so no passage lasts longer.
ORBIT_PERIOD_S = 5832.0


def read_saa(path: str | Path) -> NDArray[np.float64]:
    """Read the SAA intervals (extension SAA, START/STOP) of a weekly SAA file.

    Raises
    ------
    InputDataError
        An unreadable file, or intervals no SAA passage can have: non-finite bounds, START
        after STOP, or longer than an orbit (a damaged bound that would cut hours or years
        of data out of the GTIs without a word, mxt-022).
    """
    with reading_file(path):
        with fits.open(path) as hdul:
            d = hdul["SAA"].data
            saa = np.column_stack([d["START"], d["STOP"]]).astype(np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(saa)):
        raise InputDataError(f"{path}: SAA interval bounds must be finite")
    if np.any(saa[:, 1] < saa[:, 0]):
        raise InputDataError(f"{path}: an SAA interval has START after STOP")
    longest = float(np.max(saa[:, 1] - saa[:, 0], initial=0.0))
    if longest > ORBIT_PERIOD_S:
        raise InputDataError(
            f"{path}: an SAA interval lasts {longest:.0f} s, longer than an orbit "
            f"({ORBIT_PERIOD_S:.0f} s): its bounds are damaged"
        )
    return saa


def attitude_gti(
    att: dict[str, NDArray[Any]], tol: float = 1.5
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return (intervals with attitude, intervals with attitude and no Earth occultation).

    Consecutive attitude rows closer than ``tol`` x the nominal step make an interval; a
    longer gap means the attitude is unknown there.
    """
    t = att["TIME"]
    step = float(att["TIMESTEP"])
    if t.size < 2:
        return np.zeros((0, 2)), np.zeros((0, 2))
    link = np.diff(t) <= tol * step
    known = np.column_stack([t[:-1][link], t[1:][link]])
    clear = ~(att["EARTH"][:-1].astype(bool) | att["EARTH"][1:].astype(bool)) & link
    visible = np.column_stack([t[:-1][clear], t[1:][clear]])
    return union(known), union(visible)


# --- merge --------------------------------------------------------------------------------


@dataclass
class MergedEvents:
    """Merged, de-duplicated, time-sorted pixel events inside the GTIs, with the counts."""

    events: dict[str, NDArray[Any]]
    gti: NDArray[np.float64]
    gaps: list[tuple[float, float, str]]
    attitude: tuple[float, float, float]
    counts: dict[str, int] = field(default_factory=dict)
    tstart: float = 0.0
    tstop: float = 0.0

    def header_cards(self) -> list[tuple[str, Any, str]]:
        """Return the FITS cards recording every removed-row count and the pointing."""
        names = {
            "n_input": ("NINPUT", "pixel rows read from all passes"),
            "n_corrupted": ("NBADROW", "corrupted rows dropped (NaN/out of range)"),
            "n_bad_gti": ("NBADGTI", "GTI rows dropped (non-finite or START > STOP)"),
            "n_duplicates": ("NDUPLIC", "duplicate rows from overlapping passes"),
            "n_no_attitude": ("NNOATT", "rows dropped: no attitude"),
            "n_earth": ("NEARTH", "rows dropped: Earth occultation"),
            "n_saa": ("NSAA", "rows dropped: SAA"),
            "n_outside_gti": ("NOUTGTI", "rows dropped: outside instrument GTI"),
            "n_output": ("NOUTPUT", "pixel rows kept"),
        }
        cards: list[tuple[str, Any, str]] = [
            (kw, int(self.counts.get(k, 0)), c) for k, (kw, c) in names.items()
        ]
        cards += [
            ("RA_PNT", self.attitude[0], "[deg] pointing RA"),
            ("DEC_PNT", self.attitude[1], "[deg] pointing Dec"),
            ("PA_PNT", self.attitude[2], "[deg] roll (PA of +Z)"),
            ("TSTART", self.tstart, "[s] observation start"),
            ("TSTOP", self.tstop, "[s] observation stop"),
        ]
        return cards


def label_gaps(
    t0: float,
    t1: float,
    gti: NDArray[np.float64],
    saa: NDArray[np.float64],
    earth: NDArray[np.float64],
    no_attitude: NDArray[np.float64],
) -> list[tuple[float, float, str]]:
    """Return the gaps of [t0, t1) outside ``gti`` labelled SAA, Earth, attitude or telemetry.

    A gap is split where its cause changes; precedence SAA > Earth > attitude > telemetry.
    """
    out: list[tuple[float, float, str]] = []
    for a, b in complement(gti, t0, t1):
        rest = np.array([[a, b]])
        for label, iv in (("SAA", saa), ("Earth", earth), ("attitude", no_attitude)):
            part = intersect(rest, iv)
            out.extend((float(x), float(y), label) for x, y in part)
            rest = intersect(rest, complement(iv, a, b))
        out.extend((float(x), float(y), "telemetry") for x, y in rest)
    return sorted(out)


def merge_passes(
    passes: Sequence[PassData],
    attitude: dict[str, NDArray[Any]],
    saa: NDArray[np.float64],
    *,
    max_pointing_spread_deg: float = 0.01,
) -> MergedEvents:
    """Merge pass files: time-sort, drop duplicates, keep rows inside the combined GTI.

    Raises
    ------
    InputDataError
        If there are no passes, or the pointing moves during the observation (the imaging
        steps assume a fixed pointing).
    """
    if not passes:
        raise InputDataError("no MXT pass files given")
    cat = {c: np.concatenate([p.events[c] for p in passes]) for c in EVENT_COLUMNS}
    counts = {
        "n_input": int(cat["TIME"].size) + sum(p.n_corrupted for p in passes),
        "n_corrupted": sum(p.n_corrupted for p in passes),
        "n_bad_gti": sum(p.n_bad_gti for p in passes),
        "n_passes_without_gti": sum(p.gti_from_events for p in passes),
    }
    order = np.lexsort((cat["PHA"], cat["RAWY"], cat["RAWX"], cat["FRAME"], cat["TIME"]))
    cat = {c: v[order] for c, v in cat.items()}
    same = np.ones(cat["TIME"].size, dtype=bool)
    same[0:1] = False
    for c in ("FRAME", "RAWX", "RAWY", "PHA"):
        same[1:] &= cat[c][1:] == cat[c][:-1]
    counts["n_duplicates"] = int(same.sum())
    cat = {c: v[~same] for c, v in cat.items()}

    inst_gti = union(np.vstack([p.gti.reshape(-1, 2) for p in passes]))
    if not len(inst_gti):
        raise InputDataError("no good time interval in the pass files (their GTI tables are empty)")
    known, visible = attitude_gti(attitude)
    # the SAA complement spans the instrument's GTIs only: rows outside them are dropped
    # anyway, and one damaged time tag (1e229 s) must not size anything
    t0, t1 = float(inst_gti[0, 0]), float(inst_gti[-1, 1])
    not_saa = complement(saa, t0, t1)
    gti = intersect(intersect(inst_gti, visible), not_saa)

    t = cat["TIME"]
    in_saa = in_intervals(t, saa)
    no_att = ~in_intervals(t, known) & ~in_saa
    earth = in_intervals(t, known) & ~in_intervals(t, visible) & ~in_saa
    out_inst = ~in_intervals(t, inst_gti) & ~in_saa & ~no_att & ~earth
    counts["n_saa"] = int(in_saa.sum())
    counts["n_no_attitude"] = int(no_att.sum())
    counts["n_earth"] = int(earth.sum())
    counts["n_outside_gti"] = int(out_inst.sum())
    keep = in_intervals(t, gti)
    counts["n_output"] = int(keep.sum())
    for k in ("n_duplicates", "n_no_attitude", "n_earth", "n_saa", "n_outside_gti"):
        if counts[k]:
            log.info("merge: %d rows removed (%s)", counts[k], k[2:].replace("_", " "))
    if counts["n_no_attitude"]:
        log.warning("merge: %d rows have no attitude and are excluded", counts["n_no_attitude"])
    events = {c: v[keep] for c, v in cat.items()}

    sel = in_intervals(attitude["TIME"], gti) if len(gti) else np.ones(attitude["TIME"].size, bool)
    if not sel.any():
        raise InputDataError("no attitude rows inside the good time intervals")
    ra, dec, roll = (attitude[c][sel] for c in ("RA", "DEC", "ROLL"))
    spread = max(np.ptp(ra) * np.cos(np.radians(np.median(dec))), np.ptp(dec))
    if spread > max_pointing_spread_deg:
        raise InputDataError(
            f"the pointing moves by {spread:.3f} deg during the GTIs; MXT imaging needs a "
            f"fixed pointing (limit {max_pointing_spread_deg} deg)"
        )
    earth_iv = intersect(known, complement(visible, t0, t1))
    no_att_iv = complement(known, t0, t1)
    gaps = label_gaps(t0, t1, gti, saa, earth_iv, no_att_iv)
    return MergedEvents(
        events=events,
        gti=gti,
        gaps=gaps,
        attitude=(float(np.median(ra)), float(np.median(dec)), float(np.median(roll))),
        counts=counts,
        tstart=t0,
        tstop=t1,
    )
