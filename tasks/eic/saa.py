"""The SAA contour from count rates along the orbit, and data gaps labelled with it.

From rate samples (time, ground track, rate) over days to weeks:

1. each rate is divided by the quiescent rate of its time (the median of the samples in a
   window of about one orbit), so a drifting background and the orbital modulation do not
   move the contour: ``excess = rate / quiescent - 1``;
2. the excess is averaged in longitude-latitude cells (sample-weighted) and smoothed with a
   Gaussian (normalised convolution: unobserved cells do not count; longitude wraps);
3. the region where the smoothed excess reaches the configured level is found on a fine
   grid (bilinear interpolation), grown by the margin (Euclidean distance in degrees) and
   traced into polygons (``contourpy`` filled contours; holes are filled, islands smaller
   than ``min_island_deg2`` dropped). Latitudes the orbit never reached are outside.

The contour is a CALDB product (code ``SAACONT``) judged against the current one by the
promotion gate (:mod:`svomflow.tasks.eic.gate`) on the QC figures of :func:`qc_figures`.
:func:`label_gaps` gives each data gap its cause (``SAA`` when the spacecraft spends most of
the gap inside the contour, else ``OTHER``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config.base import CalibrationOverride, StepConfig
from svomflow.errors import InputDataError
from svomflow.products.catalogue import FitsModel, Product, TextModel
from svomflow.products.eic_saa_files import (
    OrbitRates,
    SaaContour,
    saa_contour_hdus,
    saa_contour_xml,
)
from svomflow.tasks.eic.gate import QCFigure
from svomflow.tasks.step import step

__all__ = [
    "LabelledGap",
    "RateMap",
    "SaaCandidate",
    "SaaContourConfig",
    "SaaExport",
    "SaaExportConfig",
    "compare_contours",
    "contour_from_map",
    "label_gaps",
    "polygon_iou",
    "qc_figures",
    "rate_map",
    "relative_excess",
    "saa_contour",
    "saa_contour_step",
    "saa_export",
]

#: Instrument code of the contour's products, and the CALDB names of its files.
PRODUCT_INSTRUMENT = "ECL"
TELESCOPE = "SVOM"
INSTRUMENT = "ECLAIRS"
CODENAME = "SAACONT"


class SaaContourConfig(StepConfig):
    """Step ``saa-contour``: map binning, smoothing, level and margin of the SAA contour."""

    lon_bin_deg: float = Field(2.0, gt=0, le=30, description="[deg] longitude cell of the map")
    lat_bin_deg: float = Field(1.0, gt=0, le=10, description="[deg] latitude cell of the map")
    smoothing_deg: float = Field(
        1.5, ge=0, description="[deg] Gaussian sigma of the map smoothing (0: none)"
    )
    level: float = Field(
        1.0, gt=0, description="relative excess over the quiescent rate that bounds the SAA"
    )
    quiescent_window_s: float = Field(
        5800.0, gt=0, description="[s] window of the quiescent-rate median (about one orbit)"
    )
    margin_deg: float = Field(1.0, ge=0, description="[deg] margin added around the region")
    fine_grid_deg: float = Field(
        0.25, gt=0, le=2, description="[deg] grid on which the region is traced"
    )
    min_island_deg2: float = Field(
        6.0, ge=0, description="[deg2] polygons smaller than this are dropped (noise)"
    )
    override_saacont: CalibrationOverride = Field(
        None, description="SAACONT file used as the current contour instead of the CALDB's"
    )


@dataclass(frozen=True)
class RateMap:
    """Relative excess averaged in longitude-latitude cells (NaN where nothing was sampled).

    ``excess[i, j]`` is the cell of latitude ``lat_edges[i:i+2]`` and longitude
    ``lon_edges[j:j+2]``; ``smoothed`` is the map after smoothing.
    """

    lon_edges: NDArray[np.float64]
    lat_edges: NDArray[np.float64]
    excess: NDArray[np.float64]
    smoothed: NDArray[np.float64]
    n_samples: NDArray[np.int64]

    @property
    def lon_centres(self) -> NDArray[np.float64]:
        """Return the cell centres in longitude."""
        return 0.5 * (self.lon_edges[1:] + self.lon_edges[:-1])

    @property
    def lat_centres(self) -> NDArray[np.float64]:
        """Return the cell centres in latitude."""
        return 0.5 * (self.lat_edges[1:] + self.lat_edges[:-1])


def relative_excess(rates: OrbitRates, window_s: float) -> NDArray[np.float64]:
    """Return ``rate / quiescent - 1``, the quiescent rate being each window's median.

    The SAA covers a small part of each orbit, so the median of an orbit-long window is the
    quiescent rate; a window shorter than a few samples uses its neighbours' (the whole set's
    median when there is only one).
    """
    if len(rates) == 0:
        raise InputDataError("no rate samples")
    t = rates.time
    k = np.floor((t - t.min()) / window_s).astype(np.int64)
    quiet = np.empty_like(rates.rate)
    for w in np.unique(k):
        m = k == w
        quiet[m] = np.median(rates.rate[m])
    if not np.all(quiet > 0):
        raise InputDataError("quiescent rate is zero in some window: no counts to normalise by")
    return rates.rate / quiet - 1.0


def _smooth(values: NDArray[np.float64], sigma_cells: tuple[float, float]) -> NDArray[np.float64]:
    """Gaussian smoothing ignoring NaN cells (normalised convolution; longitude wraps)."""
    from scipy.ndimage import gaussian_filter

    if sigma_cells == (0.0, 0.0):
        return values.copy()
    ok = np.isfinite(values)
    num = gaussian_filter(np.where(ok, values, 0.0), sigma_cells, mode=("nearest", "wrap"))
    den = gaussian_filter(ok.astype(float), sigma_cells, mode=("nearest", "wrap"))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    return np.where(ok, out, np.nan)


def rate_map(rates: OrbitRates, config: SaaContourConfig) -> RateMap:
    """Bin the relative excess of the samples in longitude-latitude cells and smooth it."""
    excess = relative_excess(rates, config.quiescent_window_s)
    lon_edges = np.arange(-180.0, 180.0 + 1e-9, config.lon_bin_deg)
    lat_lo = np.floor(rates.lat_deg.min() / config.lat_bin_deg) * config.lat_bin_deg
    lat_hi = np.ceil(rates.lat_deg.max() / config.lat_bin_deg) * config.lat_bin_deg
    lat_edges = np.arange(lat_lo, lat_hi + 0.5 * config.lat_bin_deg, config.lat_bin_deg)
    if lat_edges.size < 2:
        lat_edges = np.array([lat_lo, lat_lo + config.lat_bin_deg])
    w = rates.exposure_s
    num, _, _ = np.histogram2d(
        rates.lat_deg, rates.lon_deg, [lat_edges, lon_edges], weights=w * excess
    )
    den, _, _ = np.histogram2d(rates.lat_deg, rates.lon_deg, [lat_edges, lon_edges], weights=w)
    n, _, _ = np.histogram2d(rates.lat_deg, rates.lon_deg, [lat_edges, lon_edges])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(den > 0, num / den, np.nan)
    sigma = (config.smoothing_deg / config.lat_bin_deg, config.smoothing_deg / config.lon_bin_deg)
    return RateMap(lon_edges, lat_edges, mean, _smooth(mean, sigma), n.astype(np.int64))


def _polygon_area(p: NDArray[np.float64]) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def contour_from_map(
    m: RateMap, config: SaaContourConfig
) -> tuple[tuple[NDArray[np.float64], ...], tuple[float, float]]:
    """Trace the region where the smoothed excess reaches the level, grown by the margin.

    Returns the polygons (outer rings, (N, 2) longitude/latitude) and the latitude range
    the map covers (the orbit's reach).
    """
    import contourpy
    from scipy.interpolate import RegularGridInterpolator
    from scipy.ndimage import distance_transform_edt

    lat_c, lon_c = m.lat_centres, m.lon_centres
    observed_rows = np.isfinite(m.smoothed).any(axis=1)
    if not observed_rows.any():
        raise InputDataError("the rate map is empty: no samples")
    lat_range = (
        float(m.lat_edges[:-1][observed_rows].min()),
        float(m.lat_edges[1:][observed_rows].max()),
    )
    # unobserved cells count as quiescent (below the level): the region stays where data are
    field = np.where(np.isfinite(m.smoothed), m.smoothed, 0.0) - config.level
    step_deg = config.fine_grid_deg
    fl = np.arange(-180.0, 180.0 + 1e-9, step_deg)
    fb = np.arange(lat_range[0], lat_range[1] + 1e-9, step_deg)
    # periodic in longitude: pad one column on each side for the interpolation
    lon_p = np.concatenate([[lon_c[-1] - 360.0], lon_c, [lon_c[0] + 360.0]])
    field_p = np.concatenate([field[:, -1:], field, field[:, :1]], axis=1)
    interp = RegularGridInterpolator((lat_c, lon_p), field_p, bounds_error=False, fill_value=None)
    gl, gb = np.meshgrid(fl, np.clip(fb, lat_c[0], lat_c[-1]), indexing="xy")
    fine = interp(np.column_stack([gb.ravel(), gl.ravel()])).reshape(gb.shape)
    inside = fine >= 0.0
    if config.margin_deg > 0:
        dist = distance_transform_edt(~inside, sampling=step_deg)
        g = config.margin_deg - dist
    else:
        g = fine
    # outside the latitudes covered, and a border row so that every ring closes
    g = np.pad(g, 1, constant_values=-1.0)
    fl_p = np.concatenate([[fl[0] - step_deg], fl, [fl[-1] + step_deg]])
    fb_p = np.concatenate([[fb[0] - step_deg], fb, [fb[-1] + step_deg]])
    gen = contourpy.contour_generator(
        fl_p, fb_p, g, fill_type=contourpy.FillType.OuterOffset, name="serial"
    )
    filled = gen.filled(0.0, np.inf)
    points, offsets = filled[0], filled[1]  # OuterOffset: (points, offsets) per polygon
    polys: list[NDArray[np.float64]] = []
    for pts, off in zip(points, offsets, strict=True):
        assert pts is not None and off is not None  # OuterOffset fills both
        ring = np.asarray(pts[off[0] : off[1]], float)  # the outer ring; holes are filled
        if len(ring) > 1 and np.allclose(ring[0], ring[-1]):
            ring = ring[:-1]
        ring[:, 0] = np.clip(ring[:, 0], -180.0, 180.0)
        ring[:, 1] = np.clip(ring[:, 1], lat_range[0], lat_range[1])
        if len(ring) >= 3 and _polygon_area(ring) >= config.min_island_deg2:
            polys.append(_simplify(ring, 0.25 * step_deg))
    polys.sort(key=_polygon_area, reverse=True)
    return tuple(polys), lat_range


def _simplify(ring: NDArray[np.float64], tolerance: float) -> NDArray[np.float64]:
    """Drop vertices closer than ``tolerance`` to the line through their neighbours.

    At most every other vertex goes per pass (so the shape stays), passes repeat until
    nothing changes: straight runs of the fine grid collapse to their ends.
    """
    for _ in range(50):
        if len(ring) <= 8:
            return ring
        prev = np.roll(ring, 1, axis=0)
        nxt = np.roll(ring, -1, axis=0)
        d = nxt - prev
        norm = np.hypot(d[:, 0], d[:, 1])
        cross = np.abs(d[:, 0] * (ring[:, 1] - prev[:, 1]) - d[:, 1] * (ring[:, 0] - prev[:, 0]))
        with np.errstate(invalid="ignore", divide="ignore"):
            dev = np.where(norm > 0, cross / norm, 0.0)
        keep = np.ones(len(ring), dtype=bool)
        keep[1::2] = dev[1::2] > tolerance
        if keep.all():
            return ring
        ring = ring[keep]
    return ring


def saa_contour(rates: OrbitRates, config: SaaContourConfig) -> tuple[SaaContour, RateMap]:
    """Return the SAA contour measured from rate samples, and the map it was traced on."""
    if len(rates) == 0:
        raise InputDataError("no rate samples: cannot measure the SAA contour")
    m = rate_map(rates, config)
    polys, lat_range = contour_from_map(m, config)
    contour = SaaContour(
        polygons=polys,
        level=float(config.level),
        margin_deg=float(config.margin_deg),
        lat_range_deg=lat_range,
        t_start=float(rates.time.min()),
        t_stop=float(rates.time.max()),
        n_samples=len(rates),
        mjdref=rates.mjdref,
    )
    return contour, m


def _raster(
    polys: Sequence[NDArray[np.float64]], lon: NDArray[np.float64], lat: NDArray[np.float64]
) -> NDArray[np.bool_]:
    from matplotlib.path import Path as MplPath

    pts = np.column_stack([lon.ravel(), lat.ravel()])
    inside = np.zeros(len(pts), dtype=bool)
    for p in polys:
        inside |= MplPath(np.asarray(p, float)).contains_points(pts)
    return inside.reshape(lon.shape)


def polygon_iou(
    a: Sequence[NDArray[np.float64]],
    b: Sequence[NDArray[np.float64]],
    lat_range: tuple[float, float],
    resolution_deg: float = 0.2,
) -> float:
    """Return the intersection over union of two polygon sets within a latitude band.

    Areas are counted on a longitude-latitude grid weighted by cos(latitude) (solid angle).
    Two empty sets give 1; one empty set 0.
    """
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    allp = np.concatenate([np.asarray(p, float) for p in (*a, *b)])
    lo = max(float(allp[:, 0].min()) - resolution_deg, -180.0)
    hi = min(float(allp[:, 0].max()) + resolution_deg, 180.0)
    lon = np.arange(lo, hi, resolution_deg) + 0.5 * resolution_deg
    lat = np.arange(lat_range[0], lat_range[1], resolution_deg) + 0.5 * resolution_deg
    gl, gb = np.meshgrid(lon, lat)
    ra, rb = _raster(a, gl, gb), _raster(b, gl, gb)
    w = np.cos(np.radians(gb))
    union = float((w * (ra | rb)).sum())
    return float((w * (ra & rb)).sum()) / union if union > 0 else 1.0


def compare_contours(candidate: SaaContour, current: SaaContour) -> list[QCFigure]:
    """Return the figures measured on both contours: their IoU in the common latitude band."""
    lat = (
        max(candidate.lat_range_deg[0], current.lat_range_deg[0]),
        min(candidate.lat_range_deg[1], current.lat_range_deg[1]),
    )
    return [QCFigure("iou_current", polygon_iou(candidate.polygons, current.polygons, lat))]


def qc_figures(contour: SaaContour, m: RateMap) -> list[QCFigure]:
    """Return the candidate's QC figures for the gate (cuts in config/pipelines/eic_saa.yaml).

    ``n_samples``; ``coverage``: fraction of the cells of the latitudes covered that hold a
    sample; ``n_polygons``; ``area_deg2``; ``peak_excess``: the smoothed map's maximum.
    """
    rows = np.isfinite(m.excess).any(axis=1)
    cov = float(np.isfinite(m.excess[rows]).mean()) if rows.any() else 0.0
    peak = float(np.nanmax(m.smoothed)) if np.isfinite(m.smoothed).any() else float("nan")
    return [
        QCFigure("n_samples", float(contour.n_samples)),
        QCFigure("coverage", cov),
        QCFigure("n_polygons", float(len(contour.polygons))),
        QCFigure("area_deg2", contour.area_deg2, "deg2"),
        QCFigure("peak_excess", peak),
    ]


@dataclass(frozen=True)
class SaaCandidate:
    """A measured contour, its map and QC figures, and its products (SAACONT, SAAXML, SAAMAP)."""

    contour: SaaContour
    rate_map: RateMap
    figures: tuple[QCFigure, ...]
    current: SaaContour | None
    products: tuple[Product, ...]


def _map_hdus(m: RateMap, contour: SaaContour) -> list[Any]:
    from astropy.io import fits

    img = fits.ImageHDU(m.smoothed.astype(np.float32), name="EXCESS")
    for key, value, comment in (
        ("CTYPE1", "GLON-CAR", "geographic longitude"),
        ("CRPIX1", 1.0, ""),
        ("CRVAL1", float(m.lon_centres[0]), "[deg]"),
        ("CDELT1", float(m.lon_edges[1] - m.lon_edges[0]), "[deg]"),
        ("CTYPE2", "GLAT-CAR", "geographic latitude"),
        ("CRPIX2", 1.0, ""),
        ("CRVAL2", float(m.lat_centres[0]), "[deg]"),
        ("CDELT2", float(m.lat_edges[1] - m.lat_edges[0]), "[deg]"),
        ("BUNIT", "relative", "smoothed rate / quiescent - 1"),
        ("LEVEL", float(contour.level), "level of the SAA region"),
    ):
        img.header[key] = (value, comment)
    cnt = fits.ImageHDU(m.n_samples.astype(np.int32), name="NSAMPLE")
    return [fits.PrimaryHDU(), img, cnt, *saa_contour_hdus(contour)[1:]]


@step(
    name="saa-contour",
    config=SaaContourConfig,
    calibration=(CODENAME,),
    outputs=("SAACONT", "SAAMAP"),
)
def saa_contour_step(
    rates: OrbitRates, *, config: SaaContourConfig, calibration: CalibrationSet
) -> SaaCandidate:
    """Measure the SAA contour from orbit rates: the candidate file (SAACONT) and its map.

    The current contour (if the CALDB has one) is only carried along here; the promotion
    gate compares the two.
    """
    contour, m = saa_contour(rates, config)
    current = calibration.optional("eclairs", CODENAME)
    products = (
        Product("SAACONT", PRODUCT_INSTRUMENT, FitsModel.from_hdus(saa_contour_hdus(contour))),
        Product("SAAMAP", PRODUCT_INSTRUMENT, FitsModel.from_hdus(_map_hdus(m, contour))),
    )
    return SaaCandidate(contour, m, tuple(qc_figures(contour, m)), current, products)


class SaaExportConfig(StepConfig):
    """Step ``saa-export``: the XML document for the operations centre."""

    producer: str = Field(
        "svomflow ECLAIRs instrument centre", description="producer named in the document"
    )


@dataclass(frozen=True)
class SaaExport:
    """The XML document of a contour (validated against saa_contour.xsd) as a product."""

    text: str
    products: tuple[Product, ...]


@step(name="saa-export", config=SaaExportConfig, outputs=("SAAXML",))
def saa_export(
    contour: SaaContour, version: str, valid_from: str, generated: str, *, config: SaaExportConfig
) -> SaaExport:
    """Return the contour as the operations centre's XML document (``SAAXML``).

    ``version`` names the contour (its CALDB file name once promoted), ``valid_from`` and
    ``generated`` are ISO UTC times.

    Raises
    ------
    InputDataError
        For a contour without polygons (the schema needs one at least).
    """
    if not contour.polygons:
        raise InputDataError("the contour has no polygon: nothing to export")
    text = saa_contour_xml(
        contour,
        version=version,
        valid_from=valid_from,
        generated=generated,
        producer=config.producer,
    )
    return SaaExport(text, (Product("SAAXML", PRODUCT_INSTRUMENT, TextModel(text, "xml")),))


# --------------------------------------------------------------------------- data gaps
@dataclass(frozen=True)
class LabelledGap:
    """A data gap with its cause (``SAA`` or ``OTHER``) and the fraction spent in the SAA."""

    start: float
    stop: float
    cause: str
    saa_fraction: float


Track = Callable[[NDArray[np.float64]], tuple[NDArray[np.float64], NDArray[np.float64]]]


def label_gaps(
    gaps: NDArray[np.float64],
    track: Track,
    contour: SaaContour,
    *,
    min_fraction: float = 0.5,
    step_s: float = 5.0,
) -> list[LabelledGap]:
    """Label each gap ``SAA`` when the spacecraft spends ``min_fraction`` of it in the contour.

    Parameters
    ----------
    gaps
        (N, 2) start/stop mission times of the data gaps (between GTIs).
    track
        ``times -> (longitude, latitude)`` of the spacecraft (degrees), e.g. an orbit's
        ground track or an interpolation of the attitude/orbit file.
    contour
        The SAA contour valid at the gaps' time (CALDB ``SAACONT``).
    min_fraction
        Fraction of the gap inside the contour for the SAA label.
    step_s
        Sampling of the track within each gap.
    """
    out: list[LabelledGap] = []
    for a, b in np.asarray(gaps, float).reshape(-1, 2):
        n = max(int(np.ceil((b - a) / step_s)), 1)
        t = a + (b - a) * (np.arange(n) + 0.5) / n
        lon, lat = track(t)
        frac = float(np.mean(contour.contains(lon, lat)))
        out.append(
            LabelledGap(float(a), float(b), "SAA" if frac >= min_fraction else "OTHER", frac)
        )
    return out
