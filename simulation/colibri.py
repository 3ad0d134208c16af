"""COLIBRI camera simulator: raw CCD frames of a night with known truth.

One call, :func:`simulate_colibri_night`, writes a night of raw frames (uint16 FITS with the
camera's header keywords, an overscan strip and a TAN WCS on science frames): bias, dark and
twilight-flat series, a science series on a gamma-ray-burst alert with a fading afterglow,
and optionally a bad calibration series (light leak, saturated or under-exposed flats). Every
injected value goes to ``truth.json`` with the detector maps as FITS files next to it, and
the star field is written as the field's local reference catalog.

The detector signature (bias structure, dark-current map with hot pixels, flat fields) is
drawn from ``detector_seed`` only, so nights simulated with different ``seed`` share the same
detector, as real nights do; the noise, cosmic rays, pointing and star field follow ``seed``.

All numbers come from the camera definition (``config/instruments/<camera>.yaml``); the
simulator-only ones sit in its ``simulation`` section, labelled as assumptions.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table
from svomflow.instruments.ccd_camera import CameraModel, load_camera
from svomflow.products.ogip import write_hdulist
from svomflow.simulation import _optical_kernels as OK
from svomflow.simulation.starfield import (
    draw_stars,
    make_catalog,
    tan_wcs,
    write_catalog,
)

__all__ = [
    "BAD_CALIBRATION_KINDS",
    "DetectorSignature",
    "ScienceSpec",
    "expected_science_electrons",
    "load_truth",
    "make_detector",
    "read_truth_map",
    "simulate_colibri_night",
    "sky_rate_e_per_pix",
]

BAD_CALIBRATION_KINDS = (
    "bias_light_leak",
    "dark_light_leak",
    "flat_saturated",
    "flat_underexposed",
)
_DEFAULT_BAD = ("bias_light_leak", "flat_saturated")


@dataclass
class ScienceSpec:
    """The alert sequence: exposures, filters, timing and the injected afterglow.

    Times are seconds after the trigger; the afterglow flux is F(t) = F_ref (t / t_ref)^-decay,
    with ``afterglow_mag_ref`` the magnitude at ``t_ref_s`` in the band ``afterglow_band`` and
    per-band colours ``afterglow_colours`` (band - afterglow_band).
    """

    n_frames: int = 5
    filters: tuple[str, ...] = ("r",)
    exptime_s: float = 60.0
    first_delay_s: float = 120.0
    cadence_s: float = 75.0
    trigger_id: str = "sb26112401"
    object_name: str = "GRB261124A"
    afterglow: bool = True
    afterglow_band: str = "r"
    afterglow_mag_ref: float = 16.5
    afterglow_colours: dict[str, float] = field(
        default_factory=lambda: {"g": 0.30, "r": 0.0, "i": -0.25}
    )
    t_ref_s: float = 100.0
    decay_index: float = 1.2
    dither_arcsec: float = 3.0
    profile: str = "moffat"


@dataclass
class DetectorSignature:
    """The fixed detector maps a master calibration should recover.

    Attributes
    ----------
    bias_structure
        Mean of an overscan-corrected bias frame (ADU): column pattern plus 2-D gradient.
    row_pattern
        Smooth row-dependent bias level seen equally by the overscan (ADU).
    dark_rate
        Dark current at the reference temperature (e-/s), hot pixels included.
    hot_pixels
        Boolean map of the hot pixels.
    flats
        Normalised flat field (median 1) per filter.
    """

    bias_structure: np.ndarray
    row_pattern: np.ndarray
    dark_rate: np.ndarray
    hot_pixels: np.ndarray
    flats: dict[str, np.ndarray]


def _num(sim: dict[str, Any], key: str, default: Any) -> Any:
    return sim.get(key, default)


def make_detector(camera: CameraModel, size: tuple[int, int], seed: int) -> DetectorSignature:
    """Draw the detector signature of ``camera`` for a light-sensitive area of ``size``."""
    ny, nx = size
    rng = np.random.default_rng([seed, 0x5EED])
    sim = camera.simulation
    yy = np.linspace(-1.0, 1.0, ny)[:, None]
    xx = np.linspace(-1.0, 1.0, nx)[None, :]

    col = rng.normal(0.0, float(_num(sim, "bias_column_pattern_adu", 1.5)), nx)
    grad_amp = float(_num(sim, "bias_gradient_adu", 3.0))
    c = rng.uniform(-1.0, 1.0, 3)
    gradient = grad_amp * (c[0] * xx + c[1] * xx * yy + 0.5 * c[2] * (xx**2 - yy**2))
    bias_structure = (gradient + col[None, :]).astype(np.float32)
    # A smooth row pattern (a cubic in the row index): the overscan sees it too, so an
    # overscan fit of order >= 3 removes it exactly.
    rc = rng.uniform(-1.0, 1.0, 3) * float(_num(sim, "bias_row_pattern_adu", 2.0))
    y1 = yy[:, 0]
    row_pattern = rc[0] * y1 + rc[1] * 0.5 * (3 * y1**2 - 1) + rc[2] * 0.5 * (5 * y1**3 - 3 * y1)

    base = camera.dark_current_e_per_s_at_ref
    drms = float(_num(sim, "dark_spatial_rms", 0.1))
    k = rng.uniform(-1.0, 1.0, 2)
    dark = base * (1.0 + drms * (k[0] * xx + k[1] * yy) * np.ones((ny, nx)))
    hot = rng.uniform(size=(ny, nx)) < float(_num(sim, "hot_pixel_fraction", 2e-4))
    lo, hi = _num(sim, "hot_pixel_rate_e_per_s", [0.5, 50.0])
    dark[hot] = np.exp(rng.uniform(np.log(lo), np.log(hi), int(hot.sum())))

    depth = float(_num(sim, "vignetting_depth", 0.15))
    r2 = (xx**2 + yy**2) / 2.0  # 1 at the corners
    vignetting = 1.0 - depth * r2
    n_rings = rng.poisson(float(_num(sim, "dust_rings_per_mpix", 3.0)) * nx * ny / 1e6 + 0.5)
    rings = np.ones((ny, nx))
    d_lo, d_hi = _num(sim, "dust_ring_depth", [0.02, 0.06])
    r_lo, r_hi = _num(sim, "dust_ring_radius_px", [8.0, 30.0])
    for _ in range(max(int(n_rings), 1)):
        cx, cy = rng.uniform(0, nx), rng.uniform(0, ny)
        rad = rng.uniform(r_lo, r_hi)
        dep = rng.uniform(d_lo, d_hi)
        width = 0.25 * rad
        # Only the box around the ring changes (the Gaussian edge is < 1e-9 beyond 6.5 widths).
        half = rad + 6.5 * width
        j0, j1 = max(int(cy - half), 0), min(int(cy + half) + 1, ny)
        i0, i1 = max(int(cx - half), 0), min(int(cx + half) + 1, nx)
        if j0 >= j1 or i0 >= i1:
            continue
        yi = np.arange(j0, j1)[:, None]
        xi = np.arange(i0, i1)[None, :]
        rr = np.hypot(xi - cx, yi - cy)
        # A dust shadow out of focus: a ring-shaped dip with a shallower centre.
        rings[j0:j1, i0:i1] *= 1.0 - dep * (
            np.exp(-0.5 * ((rr - rad) / width) ** 2) + 0.3 * (rr < rad)
        )
    flats = {}
    prnu = float(_num(sim, "prnu_rms", 0.01))
    for j, band in enumerate(camera.filters):
        frng = np.random.default_rng([seed, 0xF1A7, j])
        tilt = frng.uniform(-0.02, 0.02, 2)
        f = vignetting * rings * (1.0 + tilt[0] * xx + tilt[1] * yy)
        f = f * (1.0 + frng.normal(0.0, prnu, (ny, nx)))
        flats[band] = (f / np.median(f)).astype(np.float32)
    return DetectorSignature(bias_structure, row_pattern, dark.astype(np.float32), hot, flats)


def _night_start(night: str) -> _dt.datetime:
    try:
        day = _dt.date.fromisoformat(night)
    except ValueError:
        raise ValueError(f"night must be a date YYYY-MM-DD, got {night!r}") from None
    return _dt.datetime(day.year, day.month, day.day, tzinfo=_dt.UTC)


def _iso(t: _dt.datetime) -> str:
    return t.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


@dataclass
class _FrameSpec:
    kind: str  # bias, dark, flat, science
    date_obs: _dt.datetime
    exptime: float
    filter: str
    index: int
    flat_level_adu: float = 0.0
    header_exptime: float | None = None
    light_leak: float = 0.0  # bias: ADU amplitude; dark: e-/s amplitude
    bad: str = ""


class _NightSimulator:
    def __init__(
        self,
        camera: CameraModel,
        det: DetectorSignature,
        rng: np.random.Generator,
        size: tuple[int, int],
        temperature_c: float,
    ) -> None:
        self.camera = camera
        self.det = det
        self.rng = rng
        self.ny, self.nx = size
        self.temperature_c = temperature_c
        sim = camera.simulation
        self.sim = sim
        yy = np.linspace(0.0, 1.0, self.ny)[:, None]
        xx = np.linspace(0.0, 1.0, self.nx)[None, :]
        self.leak_shape = (0.7 * xx + 0.3 * yy) * np.ones((self.ny, self.nx))

    def cosmic_rays(self, img: np.ndarray, seconds: float) -> int:
        sim = self.sim
        pix_cm = self.camera.pixel_size_um * 1e-4
        area = self.nx * self.ny * pix_cm**2
        lam = float(_num(sim, "cosmic_ray_rate_per_cm2_per_min", 2.0)) * area * seconds / 60.0
        n = int(self.rng.poisson(lam))
        q_lo, q_hi = _num(sim, "cosmic_ray_charge_e", [500.0, 8000.0])
        for _ in range(n):
            x0, y0 = self.rng.uniform(0, self.nx - 1), self.rng.uniform(0, self.ny - 1)
            length = self.rng.uniform(0.0, 6.0)
            ang = self.rng.uniform(0, np.pi)
            q = np.exp(self.rng.uniform(np.log(q_lo), np.log(q_hi)))
            steps = int(np.ceil(length)) + 1
            t = np.linspace(0.0, length, steps)
            xs = np.clip(np.rint(x0 + t * np.cos(ang)).astype(int), 0, self.nx - 1)
            ys = np.clip(np.rint(y0 + t * np.sin(ang)).astype(int), 0, self.ny - 1)
            np.add.at(img, (ys, xs), q / steps)
        return n

    def readout(
        self,
        electrons_expected: np.ndarray,
        seconds_for_cosmics: float,
        *,
        bleed: bool,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        cam, det, rng = self.camera, self.det, self.rng
        e = rng.poisson(np.maximum(electrons_expected, 0.0)).astype(np.float64)
        n_cr = self.cosmic_rays(e, seconds_for_cosmics)
        if bleed:
            OK.bleed_columns(e, cam.full_well_e)
        else:
            np.minimum(e, cam.full_well_e, out=e)
        drift = float(rng.normal(0.0, float(_num(self.sim, "bias_drift_adu", 2.0))))
        level = cam.bias_level_adu + drift + det.row_pattern[:, None]
        rn = cam.read_noise_adu
        img = e / cam.gain + level + det.bias_structure + rng.normal(0.0, rn, e.shape)
        os_ = level + rng.normal(0.0, rn, (self.ny, cam.overscan_columns))
        parts = [img, os_] if cam.overscan_side == "right" else [os_, img]
        raw = np.hstack(parts)
        raw = np.clip(np.rint(raw), 0.0, min(cam.saturation_adu, 65535.0)).astype(np.uint16)
        return raw, {"bias_drift_adu": drift, "n_cosmic_rays": n_cr}

    def temperature(self) -> float:
        return float(
            self.temperature_c + self.rng.normal(0.0, _num(self.sim, "temperature_rms_c", 0.1))
        )

    def dark_electrons(self, exptime: float, temp: float) -> np.ndarray:
        scale = self.camera.dark_scale(temp, self.camera.dark_ref_temperature_c)
        return self.det.dark_rate.astype(np.float64) * scale * exptime


def _header(camera: CameraModel, spec: _FrameSpec, temp: float, observer: str) -> fits.Header:
    kw = camera.kw
    h = fits.Header()
    h["TELESCOP"] = (camera.telescope, "telescope")
    h[kw("camera")] = (camera.instrument, "camera")
    h[kw("exposure_type")] = (camera.exposure_types[spec.kind], "exposure type")
    h[kw("observer")] = (observer, "program that requested the exposure")
    exptime = spec.exptime if spec.header_exptime is None else spec.header_exptime
    h[kw("exposure_time")] = (float(exptime), "[s] exposure time")
    h[kw("date_obs")] = (_iso(spec.date_obs), "UTC start of the exposure")
    h[kw("filter")] = (spec.filter, "filter")
    h[kw("temperature")] = (round(temp, 2), "[deg C] CCD temperature")
    h[kw("binning_x")] = (1, "binning along x")
    h[kw("binning_y")] = (1, "binning along y")
    h["BUNIT"] = ("adu", "raw counts")
    h["GAIN"] = (camera.gain, "[e-/adu] nominal gain")
    h["RDNOISE"] = (camera.read_noise_e, "[e-] nominal read noise")
    h["SATURATE"] = (camera.saturation_adu, "[adu] saturation level")
    return h


def _frame_name(camera: CameraModel, spec: _FrameSpec) -> str:
    stamp = spec.date_obs.strftime("%Y%m%dT%H%M%S")
    return f"{camera.instrument}_{stamp}_{spec.kind}_{spec.filter}_{spec.index:03d}.fits"


def _write_raw(path: Path, raw: np.ndarray, header: fits.Header) -> None:
    hdu = fits.PrimaryHDU(data=raw, header=header)
    write_hdulist([hdu], path, checksum=False)


def _normalise_bad(bad: bool | str | Iterable[str]) -> tuple[str, ...]:
    if bad is True:
        return _DEFAULT_BAD
    if bad is False or bad is None:
        return ()
    kinds = (bad,) if isinstance(bad, str) else tuple(bad)
    unknown = [k for k in kinds if k not in BAD_CALIBRATION_KINDS]
    if unknown:
        raise ValueError(
            f"unknown bad calibration kind(s) {unknown}; known: {BAD_CALIBRATION_KINDS}"
        )
    return kinds


def sky_rate_e_per_pix(camera: CameraModel, band: str) -> float:
    """Return the sky background in e-/s per pixel for ``band`` from the camera numbers."""
    mu = camera.sky_brightness_mag_arcsec2[band]
    return float(
        10.0 ** (-0.4 * (mu - camera.zero_points_mag[band])) * camera.pixel_scale_arcsec**2
    )


def _afterglow_mean_rate(
    spec: ScienceSpec, camera: CameraModel, band: str, t1: float, t2: float
) -> float:
    mag_ref = (
        spec.afterglow_mag_ref
        + spec.afterglow_colours.get(band, 0.0)
        - spec.afterglow_colours.get(spec.afterglow_band, 0.0)
    )
    f_ref = 10.0 ** (-0.4 * (mag_ref - camera.zero_points_mag[band]))
    a = spec.decay_index
    if abs(a - 1.0) < 1e-9:
        integral = spec.t_ref_s * np.log(t2 / t1)
    else:
        integral = spec.t_ref_s**a * (t2 ** (1 - a) - t1 ** (1 - a)) / (1 - a)
    return float(f_ref * integral / (t2 - t1))


def expected_science_electrons(
    truth: dict[str, Any], frame: str | int, *, truth_dir: str | Path | None = None
) -> np.ndarray:
    """Return the noise-free sky + stars (+ afterglow) signal of a science frame in electrons.

    This is what a reduced (bias, dark and flat corrected, gain applied) frame should equal
    within its noise: the light reaching the detector, before the flat field.

    Parameters
    ----------
    truth
        The dictionary returned by (or read from the ``truth.json`` of)
        :func:`simulate_colibri_night`.
    frame
        The raw file name of a science frame, or its index in the science series.
    truth_dir
        Directory holding the truth files (defaults to ``truth["truth_dir"]``).
    """
    sci = truth["science"]["frames"]
    if isinstance(frame, int):
        ft = sci[frame]
    else:
        matches = [f for f in sci if Path(f["file"]).name == Path(frame).name]
        if not matches:
            raise KeyError(f"{frame} is not a science frame of this night")
        ft = matches[0]
    tdir = Path(truth_dir or truth["truth_dir"])
    ny, nx = truth["size"]
    stars = Table.read(tdir / ft["stars_file"])
    img = np.full((ny, nx), ft["sky_e_per_pix"], dtype=np.float64)
    draw_stars(
        img,
        np.asarray(stars["X"]),
        np.asarray(stars["Y"]),
        np.asarray(stars["FLUX_E"]),
        fwhm_px=ft["fwhm_px"],
        profile=ft["profile"],
        beta=ft["moffat_beta"],
    )
    return img


def simulate_colibri_night(  # noqa: C901 - one night: calibration frames, then science, each optional
    out_dir: str | Path,
    seed: int,
    *,
    night: str = "2026-11-23",
    camera: str | CameraModel = "colibri_ddrago_b",
    size: tuple[int, int] | None = None,
    detector_seed: int = 20261123,
    n_bias: int = 7,
    n_dark: int = 5,
    dark_exposures: Sequence[float] = (60.0, 300.0),
    n_flat_per_filter: int = 5,
    flat_filters: Sequence[str] | None = None,
    science: bool | ScienceSpec = True,
    bad_calibration: bool | str | Iterable[str] = False,
    temperature_c: float | None = None,
    field_center: tuple[float, float] | None = None,
    star_density_per_arcmin2: float | None = None,
    bleed: bool = True,
) -> dict[str, Any]:
    """Simulate one night of a COLIBRI camera and write raw frames plus the truth.

    Parameters
    ----------
    out_dir
        Output directory: raw frames go to ``out_dir/raw``, truth files to
        ``out_dir/truth`` (``truth.json``, ``bias_structure.fits``, ``dark_rate.fits``,
        ``flat_<band>.fits``, per-frame star lists) and the reference catalog to
        ``out_dir/refcat/<object>.fits``.
    seed
        Seed of everything that changes from night to night (noise, cosmic rays, pointing,
        star field, bias drift).
    night
        Date (UTC) of the evening of the night, ``YYYY-MM-DD``.
    camera
        Camera definition name or model.
    size
        (rows, columns) of the light-sensitive area; the camera's size by default. The
        overscan strip is added to it.
    detector_seed
        Seed of the detector signature (keep it fixed to simulate several nights of one camera).
    n_bias, n_dark, n_flat_per_filter
        Frames per calibration series (darks: per exposure time in ``dark_exposures``).
    flat_filters
        Filters with twilight flats (all the camera's filters by default).
    science
        ``True`` for the default alert sequence, a :class:`ScienceSpec`, or ``False``.
    bad_calibration
        ``True`` (a light leak in the biases and saturated flats), one kind or several of
        :data:`BAD_CALIBRATION_KINDS`, or ``False``.
    temperature_c
        CCD set point (the camera's dark reference temperature by default).
    field_center
        (RA, Dec) in degrees of the alert field; drawn from ``seed`` by default.
    star_density_per_arcmin2
        Overrides the camera's simulated star density.
    bleed
        Let charge above the full well bleed along columns (else clip it).

    Returns
    -------
    dict
        The truth (also written as ``truth/truth.json``).
    """
    cam = camera if isinstance(camera, CameraModel) else load_camera(camera)
    shape = tuple(size) if size is not None else (cam.npix_y, cam.npix_x)
    if len(shape) != 2 or min(shape) < 16:
        raise ValueError(f"size must be (rows, cols) of at least 16 pixels, got {shape}")
    ny, nx = int(shape[0]), int(shape[1])
    bad = _normalise_bad(bad_calibration)
    flat_filters = tuple(flat_filters) if flat_filters is not None else cam.filters
    unknown = [f for f in flat_filters if f not in cam.filters]
    if unknown:
        raise ValueError(f"filters {unknown} are not filters of {cam.name} ({cam.filters})")
    out = Path(out_dir)
    raw_dir = out / "raw"
    truth_dir = out / "truth"
    raw_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)

    det = make_detector(cam, (ny, nx), detector_seed)
    rng = np.random.default_rng(seed)
    set_point = cam.dark_ref_temperature_c if temperature_c is None else float(temperature_c)
    simr = _NightSimulator(cam, det, rng, (ny, nx), set_point)
    sim = cam.simulation
    start = _night_start(night)
    frames_truth: list[dict[str, Any]] = []

    # --- calibration plan: biases and darks at dusk, then twilight flats per filter.
    plan: list[_FrameSpec] = []
    t = start + _dt.timedelta(hours=16, minutes=30)
    readout = _dt.timedelta(seconds=20)
    for i in range(n_bias):
        plan.append(
            _FrameSpec(
                "bias", t, 0.0, "NONE", i, light_leak=40.0 if "bias_light_leak" in bad else 0.0
            )
        )
        t += readout
    for exp in dark_exposures:
        for i in range(n_dark):
            leak = 0.5 if "dark_light_leak" in bad else 0.0
            plan.append(_FrameSpec("dark", t, float(exp), "NONE", i, light_leak=leak))
            t += _dt.timedelta(seconds=float(exp)) + readout
    lvl_hi, lvl_lo = _num(sim, "flat_levels_adu", [35000.0, 12000.0])
    flat_exp = float(_num(sim, "flat_exptime_s", 5.0))
    for band in flat_filters:
        levels = np.geomspace(lvl_hi, lvl_lo, max(n_flat_per_filter, 1))[:n_flat_per_filter]
        for i, lvl in enumerate(levels):
            kind_bad = ""
            level = float(lvl)
            if "flat_saturated" in bad:
                level *= 2.2
                kind_bad = "flat_saturated"
            elif "flat_underexposed" in bad:
                level /= 20.0
                kind_bad = "flat_underexposed"
            plan.append(
                _FrameSpec("flat", t, flat_exp, band, i, flat_level_adu=level, bad=kind_bad)
            )
            t += _dt.timedelta(seconds=flat_exp) + readout

    for spec in plan:
        temp = simr.temperature()
        dark_e = simr.dark_electrons(spec.exptime, temp)
        expected = dark_e
        if spec.kind == "bias" and spec.light_leak:
            expected = expected + spec.light_leak * cam.gain * simr.leak_shape
        if spec.kind == "dark" and spec.light_leak:
            expected = expected + spec.light_leak * spec.exptime * simr.leak_shape
        if spec.kind == "flat":
            expected = expected + spec.flat_level_adu * cam.gain * det.flats[spec.filter]
        raw, info = simr.readout(expected, spec.exptime + 10.0, bleed=bleed)
        header = _header(cam, spec, temp, observer="calib")
        name = _frame_name(cam, spec)
        _write_raw(raw_dir / name, raw, header)
        frames_truth.append(
            {
                "file": name,
                "type": spec.kind,
                "date_obs": _iso(spec.date_obs),
                "exptime": spec.exptime,
                "filter": spec.filter,
                "ccd_temp": temp,
                "flat_level_adu": spec.flat_level_adu,
                "light_leak": spec.light_leak,
                "bad": spec.bad or ("light_leak" if spec.light_leak else ""),
                **info,
            }
        )

    # --- the alert sequence
    science_truth: dict[str, Any] = {"frames": []}
    if science:
        sspec = science if isinstance(science, ScienceSpec) else ScienceSpec()
        bad_f = [f for f in sspec.filters if f not in cam.filters]
        if bad_f:
            raise ValueError(f"science filters {bad_f} are not filters of {cam.name}")
        if field_center is None:
            ra0 = float(rng.uniform(0.0, 360.0))
            dec0 = float(np.rad2deg(np.arcsin(rng.uniform(-0.5, 0.85))))
        else:
            ra0, dec0 = map(float, field_center)
        nominal = tan_wcs(ra0, dec0, (ny, nx), cam.pixel_scale_arcsec)
        density = (
            float(_num(sim, "star_density_per_arcmin2", 8.0))
            if star_density_per_arcmin2 is None
            else float(star_density_per_arcmin2)
        )
        catalog = make_catalog(
            rng,
            nominal,
            (ny, nx),
            density_per_arcmin2=density,
            mag_range=tuple(_num(sim, "star_mag_range", [12.0, 22.0])),
            slope=float(_num(sim, "star_count_slope", 0.3)),
            bands=cam.filters,
        )
        refcat_path = out / "refcat" / f"{sspec.object_name}.fits"
        write_catalog(catalog, refcat_path, name=sspec.object_name)
        # The afterglow sits in the central part of the field.
        ax = float(rng.uniform(0.3, 0.7) * nx)
        ay = float(rng.uniform(0.3, 0.7) * ny)
        ag_ra, ag_dec = (float(v) for v in nominal.all_pix2world([[ax, ay]], 0)[0])
        trigger = start + _dt.timedelta(days=1, minutes=40)
        seeing = float(_num(sim, "seeing_fwhm_arcsec", 1.5))
        beta = float(_num(sim, "moffat_beta", 3.0))
        x_off = cam.overscan_columns if cam.overscan_side == "left" else 0
        for k in range(sspec.n_frames):
            band = sspec.filters[k % len(sspec.filters)]
            t1 = sspec.first_delay_s + k * sspec.cadence_s
            t2 = t1 + sspec.exptime_s
            date_obs = trigger + _dt.timedelta(seconds=t1)
            dra, ddec = rng.normal(0.0, sspec.dither_arcsec / 3600.0, 2)
            ra_c = ra0 + dra / max(np.cos(np.deg2rad(dec0)), 1e-6)
            dec_c = dec0 + ddec
            wcs = tan_wcs(ra_c, dec_c, (ny, nx), cam.pixel_scale_arcsec)
            fwhm_px = float(seeing * (1.0 + 0.05 * rng.normal()) / cam.pixel_scale_arcsec)
            x, y = wcs.all_world2pix(catalog.ra, catalog.dec, 0)
            rate = 10.0 ** (-0.4 * (catalog.mags[band] - cam.zero_points_mag[band]))
            flux = rate * sspec.exptime_s
            ids = np.arange(len(catalog))
            mags = catalog.mags[band]
            inside = (x > -30) & (x < nx + 29) & (y > -30) & (y < ny + 29)
            x, y, flux, ids, mags = x[inside], y[inside], flux[inside], ids[inside], mags[inside]
            ag_xy = wcs.all_world2pix([[ag_ra, ag_dec]], 0)[0]
            ag_flux = 0.0
            if sspec.afterglow:
                ag_flux = _afterglow_mean_rate(sspec, cam, band, t1, t2) * sspec.exptime_s
                x = np.append(x, ag_xy[0])
                y = np.append(y, ag_xy[1])
                flux = np.append(flux, ag_flux)
                ids = np.append(ids, -1)
                mags = np.append(
                    mags, cam.zero_points_mag[band] - 2.5 * np.log10(ag_flux / sspec.exptime_s)
                )
            sky = sky_rate_e_per_pix(cam, band) * sspec.exptime_s
            light = np.full((ny, nx), sky, dtype=np.float64)
            draw_stars(light, x, y, flux, fwhm_px=fwhm_px, profile=sspec.profile, beta=beta)
            temp = simr.temperature()
            expected = light * det.flats[band] + simr.dark_electrons(sspec.exptime_s, temp)
            raw, info = simr.readout(expected, sspec.exptime_s + 10.0, bleed=bleed)
            spec = _FrameSpec("science", date_obs, sspec.exptime_s, band, k)
            header = _header(cam, spec, temp, observer="svom")
            header[cam.kw("trigger_id")] = (sspec.trigger_id, "alert trigger identifier")
            header[cam.kw("object")] = (sspec.object_name, "target")
            w_raw = tan_wcs(ra_c, dec_c, (ny, nx), cam.pixel_scale_arcsec, x_offset=x_off)
            header.update(w_raw.to_header())
            header["RA"] = (ra_c, "[deg] pointing right ascension")
            header["DEC"] = (dec_c, "[deg] pointing declination")
            name = _frame_name(cam, spec)
            _write_raw(raw_dir / name, raw, header)
            stars_file = f"stars_{Path(name).stem}.fits"
            st = Table(
                {
                    "ID": ids.astype(np.int32),
                    "X": x,
                    "Y": y,
                    "FLUX_E": flux,
                    "MAG": mags,
                }
            )
            st.meta["COMMENT"] = "0-based pixel positions in the trimmed image; ID -1 = afterglow"
            write_hdulist([fits.PrimaryHDU(), fits.table_to_hdu(st)], truth_dir / stars_file)
            science_truth["frames"].append(
                {
                    "file": name,
                    "date_obs": _iso(date_obs),
                    "t_start_s": t1,
                    "t_stop_s": t2,
                    "exptime": sspec.exptime_s,
                    "filter": band,
                    "ccd_temp": temp,
                    "fwhm_px": fwhm_px,
                    "profile": sspec.profile,
                    "moffat_beta": beta,
                    "sky_e_per_pix": sky,
                    "pointing": [ra_c, dec_c],
                    "afterglow_xy": [float(ag_xy[0]), float(ag_xy[1])],
                    "afterglow_flux_e": ag_flux,
                    "n_stars_drawn": int(flux.size),
                    "stars_file": stars_file,
                    **info,
                }
            )
        spec_dict = asdict(sspec)
        science_truth.update(
            {
                "spec": spec_dict,
                "trigger_time": _iso(trigger),
                "field_center": [ra0, dec0],
                "refcat": str(refcat_path),
                "n_catalog_stars": len(catalog),
                "afterglow": {
                    "ra": ag_ra,
                    "dec": ag_dec,
                    "band": sspec.afterglow_band,
                    "mag_ref": sspec.afterglow_mag_ref,
                    "t_ref_s": sspec.t_ref_s,
                    "decay_index": sspec.decay_index,
                    "colours": sspec.afterglow_colours,
                }
                if sspec.afterglow
                else None,
            }
        )

    # --- detector truth maps
    def _map(path: Path, data: np.ndarray, comment: str, unit: str) -> str:
        hdu = fits.PrimaryHDU(data=np.asarray(data, dtype=np.float32))
        hdu.header["BUNIT"] = unit
        hdu.header["COMMENT"] = comment
        write_hdulist([hdu], path)
        return path.name

    maps = {
        "bias_structure": _map(
            truth_dir / "bias_structure.fits",
            det.bias_structure,
            "mean overscan-corrected bias frame",
            "adu",
        ),
        "dark_rate": _map(
            truth_dir / "dark_rate.fits",
            det.dark_rate,
            f"dark current at {cam.dark_ref_temperature_c} C",
            "electron/s",
        ),
        "hot_pixels": _map(
            truth_dir / "hot_pixels.fits", det.hot_pixels.astype(np.float32), "1 = hot", ""
        ),
        "flats": {
            b: _map(truth_dir / f"flat_{b}.fits", det.flats[b], f"flat field {b}, median 1", "")
            for b in cam.filters
        },
    }
    truth: dict[str, Any] = {
        "camera": cam.name,
        "instrument": cam.instrument,
        "night": night,
        "seed": seed,
        "detector_seed": detector_seed,
        "size": [ny, nx],
        "raw_dir": str(raw_dir),
        "truth_dir": str(truth_dir),
        "set_point_c": set_point,
        "bad_calibration": list(bad),
        "detector": {
            "maps": maps,
            "bias_level_adu": cam.bias_level_adu,
            "gain": cam.gain,
            "read_noise_e": cam.read_noise_e,
            "n_hot_pixels": int(det.hot_pixels.sum()),
            "dark_ref_temperature_c": cam.dark_ref_temperature_c,
            "dark_doubling_c": cam.dark_doubling_c,
        },
        "sky_e_per_s_per_pix": {b: sky_rate_e_per_pix(cam, b) for b in cam.filters},
        "calibration_frames": frames_truth,
        "science": science_truth,
    }
    text = json.dumps(truth, indent=1, default=float)
    (truth_dir / "truth.json").write_text(text)
    return truth


def load_truth(out_dir: str | Path) -> dict[str, Any]:
    """Read the ``truth.json`` written by :func:`simulate_colibri_night` in ``out_dir``."""
    return json.loads((Path(out_dir) / "truth" / "truth.json").read_text())


def read_truth_map(truth: dict[str, Any], name: str, band: str | None = None) -> np.ndarray:
    """Return an injected detector map (``bias_structure``, ``dark_rate``, ``hot_pixels``, ``flats``)."""
    maps = truth["detector"]["maps"]
    fname = maps[name][band] if name == "flats" else maps[name]
    return fits.getdata(Path(truth["truth_dir"]) / fname).astype(np.float64)
