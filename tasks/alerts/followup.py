"""Follow-up requests for the GP1 camera from another mission's notice: a pointing or a tiling.

:func:`followup_request` turns a :class:`~svomflow.products.alert_messages.Notice` (GCN Kafka
JSON or VOEvent, any mission) into a GP1 observation request. When the notice's error
region fits in the camera's field (the field comes from the camera definition,
``config/instruments/<camera>.yaml``: pixels x pixel scale), the request is one pointing on
the region's centre. When it is larger, the region is tiled with camera fields: its
probability is laid on sky samples (a grid weighted by the 2-D Gaussian of the circle or
ellipse, or the pixels of a HEALPix sky map in its credible region), the samples are binned
in field-sized cells of a gnomonic grid centred on the most probable point, and the most
probable cells are taken until the requested coverage (or the tile budget) is reached.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
from astropy.io import fits
from pydantic import BaseModel, Field
from svomflow.config.base import StepConfig
from svomflow.errors import InputDataError
from svomflow.instruments.ccd_camera import load_camera
from svomflow.products.alert_messages import ErrorRegion, Notice

__all__ = [
    "FollowupConfig",
    "FollowupRequest",
    "SkySamples",
    "Tile",
    "followup_request",
    "region_samples",
    "skymap_samples",
    "tile_samples",
]


class FollowupConfig(StepConfig):
    """How a notice becomes a GP1 request."""

    camera: str = Field("colibri_ddrago_b", description="Camera definition (its field).")
    coverage: float = Field(
        0.9, gt=0.0, le=1.0, description="Probability of the region the tiles should cover."
    )
    max_tiles: int = Field(30, ge=1, description="Most tiles requested (the night's budget).")
    overlap: float = Field(
        0.05, ge=0.0, lt=0.5, description="Fraction of the field adjacent tiles overlap."
    )
    fit_fraction: float = Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="One pointing when the region's diameter at `coverage` is under this "
        "fraction of the field's shorter side.",
    )
    max_samples: int = Field(
        400_000, ge=1000, description="Sky samples laid on a circle or ellipse (memory bound)."
    )


class Tile(BaseModel):
    """One pointing of the camera: centre and the probability of the region it holds."""

    ra_deg: float
    dec_deg: float
    probability: float


class FollowupRequest(BaseModel):
    """A GP1 observation request: where to point, and why."""

    notice_id: str
    event_id: str
    mission: str
    instrument: str
    trigger_time: datetime
    camera: str
    field_arcmin: tuple[float, float] = Field(description="Camera field (x, y), arcmin.")
    mode: Literal["pointing", "tiling", "none"]
    ra_deg: float | None = None
    dec_deg: float | None = None
    region_kind: str | None = None
    radius_arcmin: float | None = Field(
        None, description="Error radius (semi-major axis) at the requested coverage, arcmin."
    )
    tiles: list[Tile] = Field(default_factory=list)
    covered_probability: float = 0.0
    notes: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class SkySamples:
    """Probability laid on sky points (degrees); ``prob`` sums to the region's total."""

    ra: np.ndarray
    dec: np.ndarray
    prob: np.ndarray


def _to_plane(
    ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic projection (degrees on the plane) about (ra0, dec0); far side -> NaN."""
    a, d = np.radians(ra), np.radians(dec)
    a0, d0 = math.radians(ra0), math.radians(dec0)
    cosc = math.sin(d0) * np.sin(d) + math.cos(d0) * np.cos(d) * np.cos(a - a0)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.cos(d) * np.sin(a - a0) / cosc
        y = (math.cos(d0) * np.sin(d) - math.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    bad = cosc <= 0.05  # beyond ~87 deg the projection is useless
    return np.where(bad, np.nan, np.degrees(x)), np.where(bad, np.nan, np.degrees(y))


def _from_plane(
    x: np.ndarray, y: np.ndarray, ra0: float, dec0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse gnomonic projection (plane degrees -> RA, Dec degrees)."""
    xr, yr = np.radians(x), np.radians(y)
    d0 = math.radians(dec0)
    rho = np.hypot(xr, yr)
    c = np.arctan(rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        dec = np.arcsin(
            np.cos(c) * math.sin(d0) + np.where(rho > 0, yr * np.sin(c) * math.cos(d0) / rho, 0.0)
        )
        ra = math.radians(ra0) + np.arctan2(
            xr * np.sin(c), rho * math.cos(d0) * np.cos(c) - yr * math.sin(d0) * np.sin(c)
        )
    return np.degrees(ra) % 360.0, np.degrees(dec)


def region_samples(region: ErrorRegion, spacing_deg: float, max_samples: int) -> SkySamples:
    """Lay a circle's or ellipse's Gaussian probability on a grid of sky samples.

    The region is a 2-D Gaussian whose ``containment`` contour is the stated circle or
    ellipse; the grid (``spacing_deg``, widened when it would exceed ``max_samples``)
    reaches its 99.9 % contour.
    """
    if region.ra_deg is None or region.dec_deg is None or region.radius_deg is None:
        raise InputDataError("a circle or ellipse needs a centre and a radius")
    k = math.sqrt(-2.0 * math.log1p(-region.containment))
    sa = region.radius_deg / k
    sb = (region.semi_minor_deg or region.radius_deg) / k
    reach = sa * math.sqrt(-2.0 * math.log(1e-3))
    # fine enough for the narrow axis, coarse enough for the memory bound
    h = max(min(spacing_deg, sb / 3.0), 2 * reach / math.sqrt(max_samples))
    n = math.ceil(reach / h)
    g = np.arange(-n, n + 1) * h
    x, y = np.meshgrid(g, g)
    # the semi-major axis at position angle PA (east of north, anti-clockwise on the sky)
    pa = math.radians(region.position_angle_deg)
    u = x * math.sin(pa) + y * math.cos(pa)
    v = x * math.cos(pa) - y * math.sin(pa)
    dens = np.exp(-0.5 * ((u / sa) ** 2 + (v / sb) ** 2)) / (2 * math.pi * sa * sb)
    keep = (u / sa) ** 2 + (v / sb) ** 2 <= (reach / sa) ** 2
    ra, dec = _from_plane(x[keep], y[keep], region.ra_deg, region.dec_deg)
    prob = dens[keep]
    # the grid's sum is a Riemann sum: normalise it to the 99.9 % the contour holds
    return SkySamples(ra, dec, prob * (1.0 - 1e-3) / prob.sum())


def skymap_samples(
    data: bytes, coverage: float, resolution_deg: float | None = None, max_samples: int = 400_000
) -> SkySamples:
    """Return the pixels of a HEALPix sky map in its ``coverage`` credible region.

    Their probabilities are those of the whole map (normalised to 1 over the sky). Pixels
    wider than ``resolution_deg`` are split into their nested children (probability shared
    equally) so that fields smaller than the map's pixels are weighed fairly, as long as
    the samples stay under ``max_samples``.

    Reads a flat map (``PROB`` column, ``NSIDE`` and ``ORDERING`` keywords) or a multi-order
    one (``UNIQ`` and ``PROBDENSITY`` per steradian, the LVK format) with astropy-healpix.

    Raises
    ------
    InputDataError
        Not a FITS HEALPix map.
    """
    from astropy_healpix import HEALPix, uniq_to_level_ipix

    try:
        with fits.open(io.BytesIO(data)) as hdul:
            hdu = next(h for h in hdul if isinstance(h, fits.BinTableHDU))
            cols = {c.upper() for c in hdu.columns.names}
            header = hdu.header
            table = {name.upper(): np.asarray(hdu.data[name]) for name in hdu.columns.names}
    except (OSError, StopIteration, TypeError, ValueError) as exc:
        raise InputDataError(f"the sky map is not a FITS HEALPix table: {exc}") from None
    if "UNIQ" in cols and "PROBDENSITY" in cols:
        level, ipix = uniq_to_level_ipix(table["UNIQ"].astype(np.int64))
        level = np.asarray(level, dtype=np.int64)
        ipix = np.asarray(ipix, dtype=np.int64)
        area = 4 * math.pi / (12 * 4.0**level)
        dens = table["PROBDENSITY"].astype(float)
        prob = dens * area
    elif "PROB" in cols:
        prob = table["PROB"].astype(float).ravel()
        nside = int(header.get("NSIDE", 0)) or round(math.sqrt(prob.size / 12))
        lvl = round(math.log2(nside))
        order = str(header.get("ORDERING", "RING")).lower()
        ipix = np.arange(prob.size, dtype=np.int64)
        if not order.startswith("nest"):
            ipix = np.asarray(HEALPix(nside=nside, order="ring").ring_to_nested(ipix))
        level = np.full(prob.size, lvl, dtype=np.int64)
        dens = prob
    else:
        raise InputDataError("the sky map has neither PROB nor UNIQ + PROBDENSITY columns")
    ok = np.isfinite(prob) & (prob > 0)
    level, ipix, prob, dens = level[ok], ipix[ok], prob[ok], dens[ok]
    if prob.size == 0:
        raise InputDataError("the sky map holds no probability")
    prob = prob / prob.sum()
    order_ = np.argsort(-dens)  # the credible region: highest density first
    cum = np.cumsum(prob[order_])
    keep = order_[: int(np.searchsorted(cum, coverage)) + 1]
    level, ipix, prob = level[keep], ipix[keep], prob[keep]
    if resolution_deg is not None:
        # split pixels wider than the resolution into their nested children
        size = np.degrees(np.sqrt(4 * math.pi / (12 * 4.0**level)))
        split = np.maximum(np.ceil(np.log2(np.maximum(size / resolution_deg, 1.0))), 0)
        split = split.astype(np.int64)
        while int((4**split).sum()) > max_samples and split.max() > 0:
            split = np.maximum(split - 1, 0)
        n_child = 4**split
        ipix = np.repeat(ipix * n_child, n_child) + np.concatenate([np.arange(k) for k in n_child])
        prob = np.repeat(prob / n_child, n_child)
        level = np.repeat(level + split, n_child)
    ra = np.empty(prob.size)
    dec = np.empty(prob.size)
    for lv in np.unique(level):
        sel = level == lv
        lon, lat = HEALPix(nside=2 ** int(lv), order="nested").healpix_to_lonlat(ipix[sel])
        ra[sel], dec[sel] = lon.deg, lat.deg
    return SkySamples(ra, dec, prob)


def tile_samples(
    samples: SkySamples, field_deg: tuple[float, float], config: FollowupConfig
) -> tuple[list[Tile], float]:
    """Choose camera fields covering ``config.coverage`` of the probability (most probable first).

    The samples' probabilities are absolute (a region's total is 1 over the sky).

    Returns
    -------
    tiles, covered
        The tiles, most probable first, and the probability they hold together.
    """
    best = int(np.argmax(samples.prob))
    ra0, dec0 = float(samples.ra[best]), float(samples.dec[best])
    x, y = _to_plane(samples.ra, samples.dec, ra0, dec0)
    ok = np.isfinite(x) & np.isfinite(y)
    sx, sy = (f * (1.0 - config.overlap) for f in field_deg)
    ix = np.floor(x[ok] / sx + 0.5).astype(np.int64)
    iy = np.floor(y[ok] / sy + 0.5).astype(np.int64)
    cells, inv = np.unique(np.stack([ix, iy]), axis=1, return_inverse=True)
    prob = np.bincount(inv.ravel(), weights=samples.prob[ok], minlength=cells.shape[1])
    order = np.argsort(-prob)
    target = config.coverage
    tiles: list[Tile] = []
    covered = 0.0
    for j in order[: config.max_tiles]:
        if covered >= target:
            break
        tra, tdec = _from_plane(
            np.array([cells[0, j] * sx]), np.array([cells[1, j] * sy]), ra0, dec0
        )
        tiles.append(Tile(ra_deg=float(tra[0]), dec_deg=float(tdec[0]), probability=prob[j]))
        covered += float(prob[j])
    return tiles, covered


def followup_request(notice: Notice, config: FollowupConfig | None = None) -> FollowupRequest:
    """Return the GP1 observation request for a notice: one pointing, a tiling, or none.

    A retraction, a notice without a region, or a sky map given only by URL (not fetched
    here) give mode ``none`` with the reason in ``notes``.
    """
    cfg = config or FollowupConfig()
    cam = load_camera(cfg.camera)
    field = (
        cam.npix_x * cam.pixel_scale_arcsec / 3600.0,
        cam.npix_y * cam.pixel_scale_arcsec / 3600.0,
    )
    base = FollowupRequest(
        notice_id=notice.notice_id,
        event_id=notice.event_id,
        mission=notice.mission,
        instrument=notice.instrument,
        trigger_time=notice.trigger_time,
        camera=cfg.camera,
        field_arcmin=(field[0] * 60.0, field[1] * 60.0),
        mode="none",
    )
    region = notice.region
    if notice.alert_type == "retraction":
        return base.model_copy(update={"notes": ["retraction: nothing to observe"]})
    if region is None:
        return base.model_copy(update={"notes": ["the notice gives no position"]})
    if region.kind == "skymap":
        if region.skymap_fits is None:
            note = f"sky map at {region.skymap_url} not fetched: give the FITS file"
            return base.model_copy(update={"region_kind": "skymap", "notes": [note]})
        # a margin beyond the coverage, so the tiles' edges see the probability there
        samples = skymap_samples(
            region.skymap_fits, min(1.0, cfg.coverage + 0.05), min(field) / 4, cfg.max_samples
        )
        tiles, covered = tile_samples(samples, field, cfg)
        area = samples.prob.size  # pixels of the credible region
        return base.model_copy(
            update={
                "mode": "tiling",
                "region_kind": "skymap",
                "ra_deg": tiles[0].ra_deg,
                "dec_deg": tiles[0].dec_deg,
                "tiles": tiles,
                "covered_probability": covered,
                "notes": [
                    f"{area} sky-map pixels weighed; {len(tiles)} tiles hold {covered:.3f} "
                    f"of the probability ({cfg.coverage:.0%} asked)"
                ],
            }
        )
    assert region.ra_deg is not None and region.dec_deg is not None
    assert region.radius_deg is not None
    k_req = math.sqrt(-2.0 * math.log1p(-min(cfg.coverage, 0.999999)))
    k_notice = math.sqrt(-2.0 * math.log1p(-region.containment))
    radius = region.radius_deg * k_req / k_notice  # semi-major axis at the coverage
    samples = region_samples(region, min(field) / 6.0, cfg.max_samples)
    common = {
        "region_kind": region.kind,
        "ra_deg": region.ra_deg,
        "dec_deg": region.dec_deg,
        "radius_arcmin": radius * 60.0,
    }
    if 2 * radius <= cfg.fit_fraction * min(field):
        x, y = _to_plane(samples.ra, samples.dec, region.ra_deg, region.dec_deg)
        inside = (np.abs(x) <= field[0] / 2) & (np.abs(y) <= field[1] / 2)
        covered = float(samples.prob[inside].sum())
        tile = Tile(ra_deg=region.ra_deg, dec_deg=region.dec_deg, probability=covered)
        return base.model_copy(
            update={"mode": "pointing", "tiles": [tile], "covered_probability": covered, **common}
        )
    tiles, covered = tile_samples(samples, field, cfg)
    notes = []
    if covered < cfg.coverage * 0.999:
        notes.append(
            f"{len(tiles)} tiles (the budget) hold {covered:.3f} of the probability, "
            f"under the {cfg.coverage:.0%} asked"
        )
    return base.model_copy(
        update={
            "mode": "tiling",
            "tiles": tiles,
            "covered_probability": covered,
            "notes": notes,
            **common,
        }
    )
