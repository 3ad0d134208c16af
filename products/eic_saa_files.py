"""Files of the ECLAIRs instrument centre's SAA and on-board trigger monitoring.

Formats (FITS unless said; each with a primary header naming telescope and instrument):

* orbit count rates (``ORBRATE`` table: ``TIME`` mission s, ``LON``/``LAT`` of the ground
  track in degrees, ``RATE`` counts/s, ``EXPOSURE`` s per sample): the input of the SAA
  contour;
* the SAA contour (CALDB code ``SAACONT``): ``SAACONT`` table of polygon vertices
  (``POLYGON``, ``VERTEX``, ``LON``, ``LAT`` in degrees; geographic, longitude in
  [-180, 180)), with the level, margin and latitude coverage as keywords; and its XML export
  for the operations centre (:func:`saa_contour_xml`, schema ``config/schemas/saa_contour.xsd``,
  described in ``docs/eic_saa.md``);
* the on-board rate-trigger threshold table (CALDB code ``TRIGTHR``): ``TRIGTHR`` table of
  (band, timescale, threshold in sigma) with the background window and gap as keywords;
* the on-board known-source catalogue (CALDB code ``OBSRCCAT``): ``OBSRCCAT`` table of
  names and positions;
* the on-board rate stream (``RATESTRM`` image of counts per time bin and disjoint energy
  sub-band, ``SUBBANDS`` table, ``GTI``): what the rate trigger sees;
* the on-board trigger log (``TRIGLOG`` table: reported time, band, timescale, S/N, the
  known source the trigger was attributed to if any).

Threshold tables and catalogues are configuration uploaded to the spacecraft: they are kept
as CALDB codes so that "which version was on board at time T" is the CALDB's own question
(newest validity start at or before T, immutable index versions).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from svomflow.errors import InputDataError
from svomflow.products.ogip import MALFORMED_FILE_ERRORS, primary_hdu, write_hdulist

__all__ = [
    "MJDREF_DEFAULT",
    "SAA_XML_NAMESPACE",
    "KnownSource",
    "OnboardCatalogue",
    "OnboardTrigger",
    "OrbitRates",
    "SaaContour",
    "ThresholdRow",
    "TriggerLog",
    "TriggerStream",
    "TriggerThresholds",
    "mission_time_utc",
    "onboard_catalogue_hdus",
    "orbit_rates_hdus",
    "point_in_polygon",
    "read_onboard_catalogue",
    "read_orbit_rates",
    "read_saa_contour",
    "read_saa_xml",
    "read_trigger_log",
    "read_trigger_stream",
    "read_trigger_thresholds",
    "saa_contour_hdus",
    "saa_contour_xml",
    "saa_xsd_path",
    "trigger_log_hdus",
    "trigger_stream_hdus",
    "trigger_thresholds_hdus",
    "validate_saa_xml",
    "write_onboard_catalogue",
    "write_orbit_rates",
    "write_saa_contour",
    "write_trigger_log",
    "write_trigger_stream",
    "write_trigger_thresholds",
]

#: Mission time origin (config/instruments/eclairs.yaml time_reference: 2023-01-01 TT).
MJDREF_DEFAULT = 59945.0
SAA_XML_NAMESPACE = "urn:svomflow:eic:saa-contour:1"
_TELESCOPE = "SVOM"
_INSTRUMENT = "ECLAIRS"


def mission_time_utc(t: float, mjdref: float = MJDREF_DEFAULT) -> str:
    """Return mission seconds (TT, from ``mjdref``) as an ISO UTC string (``...Z``-less)."""
    from astropy.time import Time

    return str(Time(mjdref + float(t) / 86400.0, format="mjd", scale="tt").utc.isot)


def _primary(code: str | None = None) -> fits.PrimaryHDU:
    extra = [("CCNM0001", code, "calibration code name")] if code else []
    return primary_hdu(telescope=_TELESCOPE, instrument=_INSTRUMENT, extra=extra)


def _open(path: str | Path, extname: str) -> fits.HDUList:
    try:
        hdul = fits.open(path, memmap=False)
        present = extname in hdul
    except MALFORMED_FILE_ERRORS as exc:
        raise InputDataError(
            f"{path}: not a readable FITS file ({type(exc).__name__}: {exc})"
        ) from None
    if not present:
        hdul.close()
        raise InputDataError(f"{path}: no {extname} extension (not a {extname} file)")
    return hdul


def _table(
    extname: str, columns: Sequence[fits.Column], cards: Sequence[tuple[str, object, str]]
) -> fits.BinTableHDU:
    hdu = fits.BinTableHDU.from_columns(list(columns), name=extname)
    for key, value, comment in cards:
        hdu.header[key] = (value, comment)
    return hdu


# --------------------------------------------------------------------------- orbit rates
@dataclass(frozen=True)
class OrbitRates:
    """Count rates sampled along the orbit: time, ground track, rate and exposure per sample."""

    time: NDArray[np.float64]
    lon_deg: NDArray[np.float64]
    lat_deg: NDArray[np.float64]
    rate: NDArray[np.float64]
    exposure_s: NDArray[np.float64]
    mjdref: float = MJDREF_DEFAULT

    def __post_init__(self) -> None:
        n = np.shape(self.time)
        for name in ("lon_deg", "lat_deg", "rate", "exposure_s"):
            if np.shape(getattr(self, name)) != n:
                raise InputDataError(f"orbit rates: {name} has not the length of time")

    def __len__(self) -> int:
        return int(np.size(self.time))

    def select(self, t_start: float, t_stop: float) -> OrbitRates:
        """Return the samples with ``t_start <= time < t_stop``."""
        m = (self.time >= t_start) & (self.time < t_stop)
        return OrbitRates(
            self.time[m], self.lon_deg[m], self.lat_deg[m], self.rate[m], self.exposure_s[m],
            self.mjdref,
        )  # fmt: skip

    @staticmethod
    def concatenate(parts: list[OrbitRates]) -> OrbitRates:
        """Join several files' samples, sorted by time."""
        if not parts:
            raise InputDataError("no orbit rate samples")
        t = np.concatenate([p.time for p in parts])
        order = np.argsort(t, kind="stable")

        def cat(name: str) -> NDArray[np.float64]:
            return np.concatenate([getattr(p, name) for p in parts])[order]

        return OrbitRates(
            t[order], cat("lon_deg"), cat("lat_deg"), cat("rate"), cat("exposure_s"),
            parts[0].mjdref,
        )  # fmt: skip


def orbit_rates_hdus(rates: OrbitRates) -> list[fits.PrimaryHDU | fits.BinTableHDU]:
    """Return the HDUs of an orbit-rates file."""
    cols = [
        fits.Column("TIME", "D", unit="s", array=rates.time),
        fits.Column("LON", "D", unit="deg", array=rates.lon_deg),
        fits.Column("LAT", "D", unit="deg", array=rates.lat_deg),
        fits.Column("RATE", "D", unit="count/s", array=rates.rate),
        fits.Column("EXPOSURE", "D", unit="s", array=rates.exposure_s),
    ]
    cards = [
        ("MJDREF", rates.mjdref, "MJD of mission time 0 (TT)"),
        ("TIMESYS", "TT", "time system"),
        ("TIMEUNIT", "s", "unit of TIME"),
    ]
    return [_primary(), _table("ORBRATE", cols, cards)]


def write_orbit_rates(path: str | Path, rates: OrbitRates) -> Path:
    """Write count rates along the orbit (``ORBRATE`` table)."""
    return write_hdulist(orbit_rates_hdus(rates), path)


def read_orbit_rates(path: str | Path) -> OrbitRates:
    """Read an orbit-rates file."""
    with _open(path, "ORBRATE") as hdul:
        d = hdul["ORBRATE"].data
        try:
            return OrbitRates(
                np.array(d["TIME"], float), np.array(d["LON"], float), np.array(d["LAT"], float),
                np.array(d["RATE"], float), np.array(d["EXPOSURE"], float),
                float(hdul["ORBRATE"].header.get("MJDREF", MJDREF_DEFAULT)),
            )  # fmt: skip
        except KeyError as exc:
            raise InputDataError(f"{path}: ORBRATE lacks a column ({exc})") from None


# --------------------------------------------------------------------------- SAA contour
@dataclass(frozen=True)
class SaaContour:
    """The SAA region as polygons in geographic (longitude, latitude) degrees.

    Attributes
    ----------
    polygons
        Each an (N, 2) array of (longitude, latitude) vertices, implicitly closed.
    level
        Relative excess over the quiescent rate that defines the region (rate / quiescent
        - 1 >= level).
    margin_deg
        Margin added around the region where the rate exceeds the level (degrees).
    lat_range_deg
        Latitudes the orbit covers: outside them the contour says nothing.
    t_start, t_stop
        Mission times of the data it was measured from (s).
    n_samples
        Number of rate samples used.
    """

    polygons: tuple[NDArray[np.float64], ...]
    level: float
    margin_deg: float
    lat_range_deg: tuple[float, float]
    t_start: float
    t_stop: float
    n_samples: int
    mjdref: float = MJDREF_DEFAULT

    def contains(
        self, lon_deg: NDArray[np.float64], lat_deg: NDArray[np.float64]
    ) -> NDArray[np.bool_]:
        """Return whether points lie inside any polygon (even-odd rule per polygon)."""
        lon = np.asarray(lon_deg, float)
        lat = np.asarray(lat_deg, float)
        inside = np.zeros(np.shape(lon), dtype=bool)
        for poly in self.polygons:
            inside |= point_in_polygon(lon, lat, poly)
        return inside

    @property
    def area_deg2(self) -> float:
        """Return the summed polygon area in (longitude x latitude) square degrees."""
        total = 0.0
        for p in self.polygons:
            x, y = p[:, 0], p[:, 1]
            total += 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
        return total


def point_in_polygon(
    x: NDArray[np.float64], y: NDArray[np.float64], poly: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Return whether points are inside a polygon (even-odd ray casting, vectorised over points)."""
    inside = np.zeros(np.shape(x), dtype=bool)
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < x_cross)
    return inside


def saa_contour_hdus(contour: SaaContour) -> list[fits.PrimaryHDU | fits.BinTableHDU]:
    """Return the HDUs of an SAA contour file (CALDB code ``SAACONT``)."""
    polys = list(contour.polygons)
    pid = (
        np.concatenate([np.full(len(p), i + 1, dtype=np.int32) for i, p in enumerate(polys)])
        if polys
        else np.zeros(0, np.int32)
    )
    vid = (
        np.concatenate([np.arange(1, len(p) + 1, dtype=np.int32) for p in polys])
        if polys
        else np.zeros(0, np.int32)
    )
    verts = np.concatenate(polys) if polys else np.zeros((0, 2))
    cols = [
        fits.Column("POLYGON", "J", array=pid.astype(np.int32)),
        fits.Column("VERTEX", "J", array=vid.astype(np.int32)),
        fits.Column("LON", "D", unit="deg", array=verts[:, 0]),
        fits.Column("LAT", "D", unit="deg", array=verts[:, 1]),
    ]
    cards = [
        ("LEVEL", float(contour.level), "rate/quiescent - 1 at the region's edge"),
        ("MARGIN", float(contour.margin_deg), "[deg] margin added around the region"),
        ("LATMIN", float(contour.lat_range_deg[0]), "[deg] lowest latitude covered"),
        ("LATMAX", float(contour.lat_range_deg[1]), "[deg] highest latitude covered"),
        ("TSTART", float(contour.t_start), "[s] first rate sample used"),
        ("TSTOP", float(contour.t_stop), "[s] last rate sample used"),
        ("NSAMPLE", int(contour.n_samples), "rate samples used"),
        ("NPOLY", len(contour.polygons), "number of polygons"),
        ("MJDREF", float(contour.mjdref), "MJD of mission time 0 (TT)"),
    ]
    return [_primary("SAACONT"), _table("SAACONT", cols, cards)]


def write_saa_contour(path: str | Path, contour: SaaContour) -> Path:
    """Write an SAA contour file."""
    return write_hdulist(saa_contour_hdus(contour), path)


def read_saa_contour(path: str | Path) -> SaaContour:
    """Read an SAA contour file (the ``SAACONT`` CALDB loader)."""
    with _open(path, "SAACONT") as hdul:
        h = hdul["SAACONT"].header
        d = hdul["SAACONT"].data
        try:
            pid = np.array(d["POLYGON"], int)
            verts = np.column_stack([np.array(d["LON"], float), np.array(d["LAT"], float)])
            order = np.lexsort((np.array(d["VERTEX"], int), pid))
            polys = tuple(verts[order][pid[order] == k] for k in np.unique(pid))
            return SaaContour(
                polygons=polys,
                level=float(h["LEVEL"]),
                margin_deg=float(h["MARGIN"]),
                lat_range_deg=(float(h["LATMIN"]), float(h["LATMAX"])),
                t_start=float(h["TSTART"]),
                t_stop=float(h["TSTOP"]),
                n_samples=int(h["NSAMPLE"]),
                mjdref=float(h.get("MJDREF", MJDREF_DEFAULT)),
            )
        except KeyError as exc:
            raise InputDataError(f"{path}: SAACONT lacks {exc}") from None


def saa_xsd_path() -> Path:
    """Return the packaged XSD of the SAA contour XML document."""
    return Path(str(resources.files("svomflow.config") / "schemas" / "saa_contour.xsd"))


def saa_contour_xml(
    contour: SaaContour,
    *,
    version: str,
    valid_from: str,
    generated: str,
    producer: str = "svomflow",
) -> str:
    """Return the contour as the XML document for the operations centre (validated).

    ``valid_from`` and ``generated`` are ISO UTC times; ``version`` names the contour
    (its CALDB file, or ``candidate``). The document is checked against
    ``config/schemas/saa_contour.xsd`` before it is returned.
    """
    ns = SAA_XML_NAMESPACE
    ET.register_namespace("", ns)
    root = ET.Element(f"{{{ns}}}SaaContour", {"version": version})
    meta = ET.SubElement(root, f"{{{ns}}}Metadata")
    for tag, value in (
        ("Mission", _TELESCOPE),
        ("Instrument", _INSTRUMENT),
        ("Producer", producer),
        ("Generated", _xml_time(generated)),
        ("ValidFrom", _xml_time(valid_from)),
        ("DataStart", _xml_time(mission_time_utc(contour.t_start, contour.mjdref))),
        ("DataStop", _xml_time(mission_time_utc(contour.t_stop, contour.mjdref))),
        ("Samples", str(int(contour.n_samples))),
    ):
        ET.SubElement(meta, f"{{{ns}}}{tag}").text = value
    ET.SubElement(
        meta, f"{{{ns}}}Level", {"unit": "relative excess over quiescent rate"}
    ).text = repr(float(contour.level))
    ET.SubElement(meta, f"{{{ns}}}Margin", {"unit": "deg"}).text = repr(float(contour.margin_deg))
    ET.SubElement(
        meta,
        f"{{{ns}}}LatitudeCoverage",
        {
            "min": repr(float(contour.lat_range_deg[0])),
            "max": repr(float(contour.lat_range_deg[1])),
        },
    )
    polys = ET.SubElement(root, f"{{{ns}}}Polygons", {"frame": "geographic", "unit": "deg"})
    for i, p in enumerate(contour.polygons, start=1):
        pe = ET.SubElement(polys, f"{{{ns}}}Polygon", {"id": str(i)})
        for lon, lat in p:
            ET.SubElement(pe, f"{{{ns}}}Vertex", {"lon": f"{lon:.4f}", "lat": f"{lat:.4f}"})
    ET.indent(root)
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    validate_saa_xml(text)
    return text


def _xml_time(iso: str) -> str:
    """Return an ISO time as an xs:dateTime in UTC (``...Z``), seconds kept to milliseconds."""
    from astropy.time import Time

    return str(Time(iso.rstrip("Z"), scale="utc").isot)[:23] + "Z"


def validate_saa_xml(text: str) -> None:
    """Check an SAA contour document against the packaged XSD.

    Raises
    ------
    InputDataError
        With the schema's reason when the document does not conform.
    """
    import xmlschema

    schema = xmlschema.XMLSchema(str(saa_xsd_path()))
    try:
        schema.validate(text)
    except (xmlschema.XMLSchemaException, ET.ParseError) as exc:
        reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise InputDataError(f"SAA contour XML does not follow saa_contour.xsd: {reason}") from None


def read_saa_xml(text: str) -> SaaContour:
    """Read an SAA contour document (validated first) back into a contour."""
    from astropy.time import Time

    validate_saa_xml(text)
    ns = {"s": SAA_XML_NAMESPACE}
    root = ET.fromstring(text)
    meta = root.find("s:Metadata", ns)
    assert meta is not None  # the schema requires it

    def val(tag: str) -> str:
        el = meta.find(f"s:{tag}", ns)
        assert el is not None and el.text is not None
        return el.text

    cov = meta.find("s:LatitudeCoverage", ns)
    assert cov is not None
    polys = tuple(
        np.array(
            [
                [float(v.get("lon", "nan")), float(v.get("lat", "nan"))]
                for v in p.findall("s:Vertex", ns)
            ]
        )
        for p in root.findall("s:Polygons/s:Polygon", ns)
    )
    mjdref = MJDREF_DEFAULT

    def met(tag: str) -> float:
        t = Time(val(tag).rstrip("Z"), scale="utc").tt.mjd
        return float((t - mjdref) * 86400.0)

    return SaaContour(
        polygons=polys,
        level=float(val("Level")),
        margin_deg=float(val("Margin")),
        lat_range_deg=(float(cov.get("min", "nan")), float(cov.get("max", "nan"))),
        t_start=met("DataStart"),
        t_stop=met("DataStop"),
        n_samples=int(val("Samples")),
        mjdref=mjdref,
    )


# --------------------------------------------------------------------------- trigger tables
@dataclass(frozen=True)
class ThresholdRow:
    """One criterion of the rate trigger: band (keV), timescale (s), threshold (sigma)."""

    band_kev: tuple[float, float]
    timescale_s: float
    threshold_sigma: float


@dataclass(frozen=True)
class TriggerThresholds:
    """A version of the on-board rate-trigger threshold table."""

    rows: tuple[ThresholdRow, ...]
    background_window_s: float
    gap_s: float
    label: str = ""

    def __post_init__(self) -> None:
        if not self.rows:
            raise InputDataError("a trigger threshold table needs at least one row")
        for r in self.rows:
            if not (r.band_kev[1] > r.band_kev[0] and r.timescale_s > 0 and r.threshold_sigma > 0):
                raise InputDataError(f"invalid trigger threshold row {r}")

    def threshold(self, band_kev: tuple[float, float], timescale_s: float) -> float | None:
        """Return the threshold of a (band, timescale), ``None`` when the table has no such row."""
        for r in self.rows:
            if np.allclose(r.band_kev, band_kev) and np.isclose(r.timescale_s, timescale_s):
                return r.threshold_sigma
        return None


def trigger_thresholds_hdus(table: TriggerThresholds) -> list[fits.PrimaryHDU | fits.BinTableHDU]:
    """Return the HDUs of a threshold-table file (CALDB code ``TRIGTHR``)."""
    cols = [
        fits.Column("E_MIN", "D", unit="keV", array=[r.band_kev[0] for r in table.rows]),
        fits.Column("E_MAX", "D", unit="keV", array=[r.band_kev[1] for r in table.rows]),
        fits.Column("TIMESCAL", "D", unit="s", array=[r.timescale_s for r in table.rows]),
        fits.Column("THRESH", "D", unit="sigma", array=[r.threshold_sigma for r in table.rows]),
    ]
    cards = [
        ("BKGWIN", float(table.background_window_s), "[s] background window before a test window"),
        ("BKGGAP", float(table.gap_s), "[s] gap between background and test window"),
        ("TABLEVER", table.label or "unnamed", "on-board table version label"),
    ]
    return [_primary("TRIGTHR"), _table("TRIGTHR", cols, cards)]


def write_trigger_thresholds(path: str | Path, table: TriggerThresholds) -> Path:
    """Write a threshold-table file."""
    return write_hdulist(trigger_thresholds_hdus(table), path)


def read_trigger_thresholds(path: str | Path) -> TriggerThresholds:
    """Read a threshold-table file (the ``TRIGTHR`` CALDB loader)."""
    with _open(path, "TRIGTHR") as hdul:
        h, d = hdul["TRIGTHR"].header, hdul["TRIGTHR"].data
        try:
            rows = tuple(
                ThresholdRow((float(a), float(b)), float(ts), float(th))
                for a, b, ts, th in zip(
                    d["E_MIN"], d["E_MAX"], d["TIMESCAL"], d["THRESH"], strict=True
                )
            )
            return TriggerThresholds(
                rows, float(h["BKGWIN"]), float(h["BKGGAP"]), str(h.get("TABLEVER", ""))
            )
        except KeyError as exc:
            raise InputDataError(f"{path}: TRIGTHR lacks {exc}") from None


@dataclass(frozen=True)
class KnownSource:
    """A source of the on-board catalogue (triggers on it are not bursts)."""

    name: str
    ra_deg: float
    dec_deg: float


@dataclass(frozen=True)
class OnboardCatalogue:
    """A version of the on-board known-source catalogue."""

    sources: tuple[KnownSource, ...]
    label: str = ""

    @property
    def names(self) -> frozenset[str]:
        """Return the source names."""
        return frozenset(s.name for s in self.sources)


def onboard_catalogue_hdus(cat: OnboardCatalogue) -> list[fits.PrimaryHDU | fits.BinTableHDU]:
    """Return the HDUs of an on-board catalogue file (CALDB code ``OBSRCCAT``)."""
    cols = [
        fits.Column("NAME", "24A", array=[s.name for s in cat.sources]),
        fits.Column("RA", "D", unit="deg", array=[s.ra_deg for s in cat.sources]),
        fits.Column("DEC", "D", unit="deg", array=[s.dec_deg for s in cat.sources]),
    ]
    return [
        _primary("OBSRCCAT"),
        _table("OBSRCCAT", cols, [("CATVER", cat.label or "unnamed", "catalogue version label")]),
    ]


def write_onboard_catalogue(path: str | Path, cat: OnboardCatalogue) -> Path:
    """Write an on-board known-source catalogue file."""
    return write_hdulist(onboard_catalogue_hdus(cat), path)


def read_onboard_catalogue(path: str | Path) -> OnboardCatalogue:
    """Read an on-board catalogue file (the ``OBSRCCAT`` CALDB loader)."""
    with _open(path, "OBSRCCAT") as hdul:
        h, d = hdul["OBSRCCAT"].header, hdul["OBSRCCAT"].data
        try:
            src = tuple(
                KnownSource(str(n).strip(), float(r), float(de))
                for n, r, de in zip(d["NAME"], d["RA"], d["DEC"], strict=True)
            )
        except KeyError as exc:
            raise InputDataError(f"{path}: OBSRCCAT lacks {exc}") from None
        return OnboardCatalogue(src, str(h.get("CATVER", "")))


# --------------------------------------------------------------------------- rate stream
@dataclass(frozen=True)
class TriggerStream:
    """Counts on the on-board clock in disjoint energy sub-bands, with the good time.

    ``counts[i, k]`` are the counts of bin ``[t_start + i * resolution_s, ... +
    resolution_s)`` in sub-band ``[band_edges_kev[k], band_edges_kev[k + 1])``.
    """

    t_start: float
    resolution_s: float
    band_edges_kev: tuple[float, ...]
    counts: NDArray[np.int32]
    gti: NDArray[np.float64]
    mjdref: float = MJDREF_DEFAULT

    def __post_init__(self) -> None:
        if self.counts.ndim != 2 or self.counts.shape[1] != len(self.band_edges_kev) - 1:
            raise InputDataError("rate stream: counts must be (n_bins, n_sub-bands)")
        if self.resolution_s <= 0:
            raise InputDataError("rate stream: resolution must be positive")

    @property
    def n_bins(self) -> int:
        """Return the number of time bins."""
        return int(self.counts.shape[0])

    @property
    def t_stop(self) -> float:
        """Return the end of the last bin."""
        return self.t_start + self.n_bins * self.resolution_s

    def band_counts(self, band_kev: tuple[float, float]) -> NDArray[np.int64]:
        """Return the counts of a band made of whole sub-bands.

        Raises
        ------
        InputDataError
            When the band's edges are not sub-band edges.
        """
        edges = np.asarray(self.band_edges_kev)
        lo = np.flatnonzero(np.isclose(edges, band_kev[0]))
        hi = np.flatnonzero(np.isclose(edges, band_kev[1]))
        if lo.size == 0 or hi.size == 0 or hi[0] <= lo[0]:
            raise InputDataError(
                f"band {band_kev} keV is not made of the stream's sub-bands {list(self.band_edges_kev)}"
            )
        return self.counts[:, lo[0] : hi[0]].sum(axis=1, dtype=np.int64)


def trigger_stream_hdus(
    stream: TriggerStream,
) -> list[fits.PrimaryHDU | fits.ImageHDU | fits.BinTableHDU]:
    """Return the HDUs of a rate-stream file."""
    img = fits.ImageHDU(np.ascontiguousarray(stream.counts, dtype=np.int32), name="RATESTRM")
    for key, value, comment in (
        ("TSTART", float(stream.t_start), "[s] start of the first bin"),
        ("TIMEDEL", float(stream.resolution_s), "[s] bin width"),
        ("MJDREF", float(stream.mjdref), "MJD of mission time 0 (TT)"),
        ("TIMESYS", "TT", "time system"),
    ):
        img.header[key] = (value, comment)
    e = np.asarray(stream.band_edges_kev, float)
    sub = _table(
        "SUBBANDS",
        [
            fits.Column("E_MIN", "D", unit="keV", array=e[:-1]),
            fits.Column("E_MAX", "D", unit="keV", array=e[1:]),
        ],
        [],
    )
    gti = _table(
        "GTI",
        [
            fits.Column("START", "D", unit="s", array=stream.gti[:, 0]),
            fits.Column("STOP", "D", unit="s", array=stream.gti[:, 1]),
        ],
        [("MJDREF", float(stream.mjdref), "MJD of mission time 0 (TT)")],
    )
    return [_primary(), img, sub, gti]


def write_trigger_stream(path: str | Path, stream: TriggerStream) -> Path:
    """Write a rate-stream file."""
    return write_hdulist(trigger_stream_hdus(stream), path)


def read_trigger_stream(path: str | Path) -> TriggerStream:
    """Read a rate-stream file."""
    with _open(path, "RATESTRM") as hdul:
        try:
            h = hdul["RATESTRM"].header
            sub = hdul["SUBBANDS"].data
            edges = (*[float(x) for x in sub["E_MIN"]], float(sub["E_MAX"][-1]))
            g = hdul["GTI"].data
            return TriggerStream(
                t_start=float(h["TSTART"]),
                resolution_s=float(h["TIMEDEL"]),
                band_edges_kev=edges,
                counts=np.array(hdul["RATESTRM"].data, dtype=np.int32),
                gti=np.column_stack(
                    [np.array(g["START"], float), np.array(g["STOP"], float)]
                ).reshape(-1, 2),
                mjdref=float(h.get("MJDREF", MJDREF_DEFAULT)),
            )
        except KeyError as exc:
            raise InputDataError(f"{path}: rate stream lacks {exc}") from None


# --------------------------------------------------------------------------- trigger log
@dataclass(frozen=True)
class OnboardTrigger:
    """One entry of the on-board trigger log (times as reported, mission s)."""

    trigger_id: int
    time: float
    band_kev: tuple[float, float]
    timescale_s: float
    snr: float
    source: str = ""


@dataclass(frozen=True)
class TriggerLog:
    """The on-board trigger log over a period."""

    triggers: tuple[OnboardTrigger, ...] = field(default_factory=tuple)
    mjdref: float = MJDREF_DEFAULT


def trigger_log_hdus(log: TriggerLog) -> list[fits.PrimaryHDU | fits.BinTableHDU]:
    """Return the HDUs of an on-board trigger log."""
    tr = log.triggers
    cols = [
        fits.Column("TRIGID", "J", array=np.array([t.trigger_id for t in tr], dtype=np.int32)),
        fits.Column("TIME", "D", unit="s", array=[t.time for t in tr]),
        fits.Column("E_MIN", "D", unit="keV", array=[t.band_kev[0] for t in tr]),
        fits.Column("E_MAX", "D", unit="keV", array=[t.band_kev[1] for t in tr]),
        fits.Column("TIMESCAL", "D", unit="s", array=[t.timescale_s for t in tr]),
        fits.Column("SNR", "D", array=[t.snr for t in tr]),
        fits.Column("SOURCE", "24A", array=[t.source for t in tr]),
    ]
    return [
        _primary(),
        _table("TRIGLOG", cols, [("MJDREF", float(log.mjdref), "MJD of mission time 0 (TT)")]),
    ]


def write_trigger_log(path: str | Path, log: TriggerLog) -> Path:
    """Write an on-board trigger log."""
    return write_hdulist(trigger_log_hdus(log), path)


def read_trigger_log(path: str | Path) -> TriggerLog:
    """Read an on-board trigger log."""
    with _open(path, "TRIGLOG") as hdul:
        d = hdul["TRIGLOG"].data
        try:
            tr = tuple(
                OnboardTrigger(
                    int(i), float(t), (float(a), float(b)), float(ts), float(s), str(src).strip()
                )
                for i, t, a, b, ts, s, src in zip(
                    d["TRIGID"],
                    d["TIME"],
                    d["E_MIN"],
                    d["E_MAX"],
                    d["TIMESCAL"],
                    d["SNR"],
                    d["SOURCE"],
                    strict=True,
                )
            )
        except KeyError as exc:
            raise InputDataError(f"{path}: TRIGLOG lacks {exc}") from None
        return TriggerLog(tr, float(hdul["TRIGLOG"].header.get("MJDREF", MJDREF_DEFAULT)))
