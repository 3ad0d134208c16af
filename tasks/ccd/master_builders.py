"""Master bias, dark and flat builders: overscan, calibration of each frame, chunked combine.

Each builder reads its frames twice: once whole, one frame at a time, for the overscan level
and the frame's scale (flats); then in row chunks through :func:`combine_chunked`, so the
memory held is one raw frame plus ``chunk_rows x ncols x nframes x 4`` bytes plus the
outputs (see :func:`svomflow.tasks.ccd.combine.combine_memory_bound`). Frames fpack'd as
``.fits.fz`` are read the same way: a row chunk decompresses only the tiles it covers (fpack's
default tile is one row; a whole-image tile costs one decompression per chunk, not memory).

Units: master bias in ADU (overscan-corrected), master dark in ADU/s at the group's mean
temperature, master flat normalised to median 1. Each master carries an error map (ERR) from
the measured single-frame noise and the Poisson term, and the number of frames kept per
pixel (NFRAMES).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.products.ogip import write_hdulist
from svomflow.tasks.ccd.camera import CameraModel
from svomflow.tasks.ccd.combine import CombineConfig, combine_chunked
from svomflow.tasks.ccd.fitsio import READ_ERRORS, open_image
from svomflow.tasks.ccd.frames import RawFrameInfo, read_frame_info, read_raw
from svomflow.tasks.ccd.overscan import OverscanConfig, overscan_vector

__all__ = [
    "MasterFrame",
    "build_master_bias",
    "build_master_dark",
    "build_master_flat",
    "read_master",
    "robust_std",
]


def robust_std(values: np.ndarray) -> float:
    """Return the MAD-based standard deviation of the finite values (1.4826 x MAD)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


@dataclass
class MasterFrame:
    """A master calibration frame with its error and per-pixel frame count.

    Attributes
    ----------
    kind
        ``BIAS``, ``DARK`` or ``FLAT`` (the CALDB code name).
    data, error
        Master values and 1-sigma errors (float32).
    count
        Frames kept per pixel after clipping (int16).
    meta
        Header keywords: camera, filter, temperature, exposure, number of frames, measured
        frame noise, dates.
    frames
        Per-input-frame statistics (file, level, noise, saturated fraction, scale).
    """

    kind: str
    data: np.ndarray
    error: np.ndarray
    count: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    frames: list[dict[str, Any]] = field(default_factory=list)

    def header_cards(self) -> list[tuple[str, Any, str]]:
        """Return the primary-header cards describing this master."""
        m = self.meta
        comments = {
            "OBSTYPE": "master calibration type",
            "INSTRUME": "camera",
            "FILTER": "filter",
            "BINNING": "binning x by y",
            "CCDTEMP": "[deg C] mean CCD temperature of the inputs",
            "EXPTIME": "[s] exposure time of the inputs (darks, flats)",
            "NCOMBINE": "number of frames combined",
            "DATE-OBS": "UTC start of the first input frame",
            "DATE-END": "UTC start of the last input frame",
            "BUNIT": "unit of the SCI extension",
            "FRMNOISE": "[adu] median single-frame noise measured",
            "RDNOISE": "[adu] read noise used for the error map",
            "GAIN": "[e-/adu] gain",
            "CLIPSIG": "sigma-clipping threshold",
            "COMBMETH": "combination statistic",
            "MEDLEVEL": "median of the master",
            "MEDSCALE": "median scale of the inputs (flats: level in adu)",
        }
        return [(k, v, comments.get(k, "")) for k, v in m.items() if v is not None]

    def write(self, path: str | Path, *, extra: Sequence[tuple[str, Any, str]] = ()) -> Path:
        """Write the master as FITS (primary header, SCI, ERR, NFRAMES) atomically."""
        prim = fits.PrimaryHDU()
        for k, v, c in [*self.header_cards(), *extra]:
            _set_card(prim.header, k, v, c)
        for i, fr in enumerate(self.frames):
            prim.header[f"INPUT{i + 1:03d}"] = Path(fr["file"]).name[:68]
        sci = fits.ImageHDU(self.data.astype(np.float32), name="SCI")
        err = fits.ImageHDU(self.error.astype(np.float32), name="ERR")
        cnt = fits.ImageHDU(self.count.astype(np.int16), name="NFRAMES")
        return write_hdulist([prim, sci, err, cnt], path)


def _set_card(header: fits.Header, key: str, value: Any, comment: str) -> None:
    """Set a card, shortening its comment so that it fits in 80 characters."""
    room = 80 - 8 - 2 - max(20, len(str(value)) + 2) - 3
    header[key] = (value, comment[: max(room, 0)])


def read_master(path: str | Path) -> MasterFrame:
    """Read a master written by :meth:`MasterFrame.write`."""
    p = Path(path)
    try:
        with fits.open(p) as hdul:
            h = hdul[0].header
            data = np.asarray(hdul["SCI"].data, dtype=np.float32)
            err = np.asarray(hdul["ERR"].data, dtype=np.float32)
            cnt = np.asarray(hdul["NFRAMES"].data, dtype=np.int16)
            meta = {k: h[k] for k in h if k and not k.startswith("INPUT") and k not in _STRUCT}
    except (OSError, KeyError, ValueError) as exc:
        raise InputDataError(f"{p}: not a master calibration file ({exc})") from None
    return MasterFrame(str(meta.get("OBSTYPE", "")), data, err, cnt, meta)


_STRUCT = {"SIMPLE", "BITPIX", "NAXIS", "EXTEND", "CHECKSUM", "DATASUM", "COMMENT", "HISTORY"}


def _iso(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


class _Inputs:
    """Raw frames of one group: headers, overscan vectors and row-chunk access."""

    def __init__(
        self, paths: Sequence[str | Path], camera: CameraModel, overscan: OverscanConfig
    ) -> None:
        if not paths:
            raise InputDataError("no frames to combine")
        self.camera = camera
        self.overscan = overscan
        self.infos: list[RawFrameInfo] = [read_frame_info(p, camera) for p in paths]
        shapes = {i.shape for i in self.infos}
        if len(shapes) != 1:
            raise InputDataError(f"frames of different shapes cannot be combined: {sorted(shapes)}")
        self.raw_shape = shapes.pop()
        _, cols = camera.image_slice()
        self.cols = cols
        self.shape = (self.raw_shape[0], self.raw_shape[1] - camera.overscan_columns)
        self.vectors: list[np.ndarray] = []
        self.stats: list[dict[str, Any]] = []

    def first_pass(self, per_frame: Any = None) -> None:
        """Read each frame whole once: overscan vector, raw statistics, optional scale."""
        cam = self.camera
        for info in self.infos:
            raw, _ = read_raw(info.path, cam)
            strip = raw[cam.overscan_slice()]
            vec = overscan_vector(strip, self.overscan)
            img = raw[cam.image_slice()]
            st: dict[str, Any] = {
                "file": str(info.path),
                "date_obs": _iso(info.date_obs),
                "exptime": info.exptime,
                "temperature": info.temperature,
                "overscan_level": float(np.median(vec)),
                "overscan_noise": robust_std(strip - vec[:, None]),
                "saturated_fraction": float(np.mean(img >= cam.saturation_adu)),
            }
            if per_frame is not None:
                corrected = img.astype(np.float32) - vec[:, None].astype(np.float32)
                st.update(per_frame(info, corrected))
            self.vectors.append(vec)
            self.stats.append(st)

    def loader(self, transform: Any) -> Any:
        """Return ``load_rows(i, rows)`` giving calibrated rows of frame ``i``."""
        # Unscaled sections: only the requested rows are read (for an fpack'd frame, only the
        # tiles holding them are decompressed, so memory stays bounded); BZERO/BSCALE here.
        self._open = []
        for info in self.infos:
            hdul, index = open_image(info.path, memmap=True, scaled=False)
            self._open.append((hdul, hdul[index]))
        hdus = [hdu for _, hdu in self._open]
        scaling = [
            (float(h.header.get("BSCALE", 1.0)), float(h.header.get("BZERO", 0.0))) for h in hdus
        ]

        def load(i: int, rows: slice) -> np.ndarray:
            try:
                block = np.asarray(hdus[i].section[rows, self.cols])
            except READ_ERRORS as exc:
                raise InputDataError(f"{self.infos[i].path}: cannot read rows ({exc})") from None
            bscale, bzero = scaling[i]
            img = block.astype(np.float32)
            if bscale != 1.0:
                img *= np.float32(bscale)
            if bzero != 0.0:
                img += np.float32(bzero)
            img -= self.vectors[i][rows, None].astype(np.float32)
            return transform(i, rows, img)

        return load

    def close(self) -> None:
        for hdul, _ in getattr(self, "_open", []):
            hdul.close()
        self._open = []


def _model_error(
    model: tuple[np.ndarray, np.ndarray], data: np.ndarray, count: np.ndarray
) -> np.ndarray:
    """Error of a combined mean from the frames' noise model, averaged over the frames."""
    a = float(np.mean(model[0]))
    b = float(np.mean(model[1]))
    var = (a + b * np.maximum(np.nan_to_num(data), 0.0)) / np.maximum(count, 1)
    return np.sqrt(var).astype(np.float32)


def _residual_noise(
    load: Any, n: int, master: np.ndarray, shape: tuple[int, int], chunk: int
) -> list[float]:
    """Per-frame robust std of (frame - master) on a sparse row sample."""
    nr = shape[0]
    step = max(nr // 64, 1)
    rows = slice(0, nr, step)
    sample_rows = np.arange(nr)[rows]
    out = []
    for i in range(n):
        resid = []
        for r in sample_rows[:: max(len(sample_rows) // 16, 1)]:
            sl = slice(int(r), int(r) + 1)
            resid.append(load(i, sl)[0] - master[r])
        out.append(robust_std(np.concatenate(resid)))
    correction = np.sqrt(1.0 - 1.0 / n) if n > 1 else 1.0
    return [float(v / correction) for v in out]


def _common_meta(
    kind: str, inp: _Inputs, camera: CameraModel, combine: CombineConfig
) -> dict[str, Any]:
    infos = inp.infos
    dates = sorted(i.date_obs for i in infos)
    temps = np.array([i.temperature for i in infos], dtype=float)
    return {
        "OBSTYPE": kind,
        "INSTRUME": infos[0].camera,
        "FILTER": infos[0].filter if kind == "FLAT" else "NONE",
        "BINNING": infos[0].binning,
        "CCDTEMP": round(float(np.nanmean(temps)), 3) if np.isfinite(temps).any() else None,
        "NCOMBINE": len(infos),
        "DATE-OBS": _iso(dates[0]),
        "DATE-END": _iso(dates[-1]),
        "GAIN": camera.gain,
        "CLIPSIG": combine.sigma_high,
        "COMBMETH": f"{combine.method}/{combine.center}/{combine.scale}",
    }


def build_master_bias(
    paths: Sequence[str | Path],
    camera: CameraModel,
    *,
    overscan: OverscanConfig | None = None,
    combine: CombineConfig | None = None,
) -> MasterFrame:
    """Build a master bias (ADU, overscan-corrected) from raw bias frames."""
    overscan = overscan or OverscanConfig()
    combine = combine or CombineConfig()
    inp = _Inputs(paths, camera, overscan)
    inp.first_pass()
    rn2 = np.array([st["overscan_noise"] ** 2 for st in inp.stats])
    model = (rn2, np.zeros_like(rn2))
    try:
        load = inp.loader(lambda i, rows, img: img)
        data, count = combine_chunked(load, len(inp.infos), inp.shape, combine, noise=model)
        noise = _residual_noise(load, len(inp.infos), data, inp.shape, combine.chunk_rows)
    finally:
        inp.close()
    for st, nz in zip(inp.stats, noise, strict=True):
        st["noise"] = nz
    frame_noise = float(np.median(noise))
    error = _model_error(model, data, count)
    meta = _common_meta("BIAS", inp, camera, combine)
    meta.update(
        {
            "EXPTIME": 0.0,
            "BUNIT": "adu",
            "FRMNOISE": round(frame_noise, 4),
            "RDNOISE": round(float(np.sqrt(np.median(rn2))), 4),
            "MEDLEVEL": float(np.nanmedian(data)),
        }
    )
    return MasterFrame("BIAS", data, error, count, meta, inp.stats)


def _bias_arrays(
    bias: MasterFrame, shape: tuple[int, int], what: str
) -> tuple[np.ndarray, np.ndarray]:
    if bias.data.shape != shape:
        raise InputDataError(
            f"master bias of shape {bias.data.shape} does not match {what} {shape}"
        )
    return bias.data, bias.error


def build_master_dark(
    paths: Sequence[str | Path],
    camera: CameraModel,
    bias: MasterFrame,
    *,
    overscan: OverscanConfig | None = None,
    combine: CombineConfig | None = None,
    temperature_scaling: bool = True,
) -> MasterFrame:
    """Build a master dark in ADU/s at the mean temperature of the frames.

    Each frame is overscan- and bias-corrected and divided by its exposure time; with
    ``temperature_scaling`` it is also scaled to the group's mean temperature with the
    camera's doubling law before the combination.
    """
    overscan = overscan or OverscanConfig()
    combine = combine or CombineConfig()
    inp = _Inputs(paths, camera, overscan)
    exps = np.array([i.exptime for i in inp.infos], dtype=float)
    if np.any(exps <= 0):
        raise InputDataError("dark frames must have a positive exposure time")
    temps = np.array([i.temperature for i in inp.infos], dtype=float)
    t_mean = float(np.nanmean(temps)) if np.isfinite(temps).any() else float("nan")
    factors = np.ones_like(exps)
    if temperature_scaling and np.isfinite(temps).all():
        factors = np.array([camera.dark_scale(t_mean, t) for t in temps])
    b, b_err = _bias_arrays(bias, inp.shape, "the dark frames")
    inp.first_pass()
    rn2 = np.array([st["overscan_noise"] ** 2 for st in inp.stats])
    # rate = S f / t with S in ADU: var = rn^2 f^2 / t^2 + rate f / (g t)
    model = (rn2 * factors**2 / exps**2, factors / (camera.gain * exps))
    try:
        load = inp.loader(lambda i, rows, img: (img - b[rows]) * (factors[i] / exps[i]))
        data, count = combine_chunked(load, len(inp.infos), inp.shape, combine, noise=model)
        noise = _residual_noise(load, len(inp.infos), data, inp.shape, combine.chunk_rows)
    finally:
        inp.close()
    rn = float(np.sqrt(np.median(rn2)))
    for st, nz in zip(inp.stats, noise, strict=True):
        st["noise"] = nz  # ADU/s
    err = _model_error(model, data, count)
    var = err.astype(np.float64) ** 2 + (b_err * np.mean(factors / exps)) ** 2
    meta = _common_meta("DARK", inp, camera, combine)
    meta.update(
        {
            "EXPTIME": float(np.median(exps)),
            "BUNIT": "adu/s",
            "FRMNOISE": round(float(np.median(noise)), 6),
            "RDNOISE": rn,
            "MEDLEVEL": float(np.nanmedian(data)),
        }
    )
    return MasterFrame("DARK", data, np.sqrt(var).astype(np.float32), count, meta, inp.stats)


def _dark_arrays(
    dark: MasterFrame | None,
    shape: tuple[int, int],
    camera: CameraModel,
    temperature: float,
    scaling: bool,
) -> tuple[np.ndarray | float, np.ndarray | float]:
    if dark is None:
        return 0.0, 0.0
    if dark.data.shape != shape:
        raise InputDataError(f"master dark of shape {dark.data.shape} does not match {shape}")
    f = 1.0
    t_ref = dark.meta.get("CCDTEMP")
    if scaling and t_ref is not None and np.isfinite(temperature):
        f = camera.dark_scale(temperature, float(t_ref))
    return dark.data * f, dark.error * f


def build_master_flat(
    paths: Sequence[str | Path],
    camera: CameraModel,
    bias: MasterFrame,
    dark: MasterFrame | None = None,
    *,
    overscan: OverscanConfig | None = None,
    combine: CombineConfig | None = None,
    temperature_scaling: bool = True,
) -> MasterFrame:
    """Build a master flat normalised to median 1 from twilight or dome flats of one filter.

    Each frame is overscan-, bias- and dark-corrected, then divided by its median so that
    frames of different levels (a twilight ramp) combine; the result is renormalised to a
    median of 1.
    """
    overscan = overscan or OverscanConfig()
    combine = combine or CombineConfig()
    inp = _Inputs(paths, camera, overscan)
    filters = {i.filter for i in inp.infos}
    if len(filters) != 1:
        raise InputDataError(
            f"flat frames of several filters cannot be combined: {sorted(filters)}"
        )
    b, b_err = _bias_arrays(bias, inp.shape, "the flat frames")
    darks = [
        _dark_arrays(dark, inp.shape, camera, i.temperature, temperature_scaling)[0]
        for i in inp.infos
    ]

    def level(info: RawFrameInfo, corrected: np.ndarray) -> dict[str, Any]:
        k = inp.infos.index(info)
        sig = corrected - b - darks[k] * info.exptime
        sub = sig[::4, ::4]
        return {"level": float(np.median(sub))}

    inp.first_pass(level)
    scales = np.array([st["level"] for st in inp.stats], dtype=float)
    if np.any(~(scales > 0)):
        bad = [Path(st["file"]).name for st in inp.stats if not st["level"] > 0]
        raise InputDataError(f"flat frames with no signal above bias: {', '.join(bad)}")
    exps = [i.exptime for i in inp.infos]
    rn2 = np.array([st["overscan_noise"] ** 2 for st in inp.stats])
    # v = S / s with S in ADU: var = rn^2 / s^2 + v / (g s)
    model = (rn2 / scales**2, 1.0 / (camera.gain * scales))
    try:
        load = inp.loader(
            lambda i, rows, img: (img - b[rows] - _rows(darks[i], rows) * exps[i]) / scales[i]
        )
        data, count = combine_chunked(load, len(inp.infos), inp.shape, combine, noise=model)
        noise = _residual_noise(load, len(inp.infos), data, inp.shape, combine.chunk_rows)
    finally:
        inp.close()
    norm = float(np.nanmedian(data))
    err = _model_error(model, data, count).astype(np.float64)
    var = err**2 + (b_err * np.mean(1.0 / scales)) ** 2
    data = data / norm
    var = var / norm**2
    rn = float(np.sqrt(np.median(rn2)))
    for st, nz in zip(inp.stats, noise, strict=True):
        st["noise"] = nz
    meta = _common_meta("FLAT", inp, camera, combine)
    meta.update(
        {
            "EXPTIME": float(np.median(exps)),
            "BUNIT": "",
            "FRMNOISE": round(float(np.median(noise)), 6),
            "RDNOISE": rn,
            "MEDLEVEL": float(np.nanmedian(data)),
            "MEDSCALE": float(np.median(scales)),
        }
    )
    return MasterFrame(
        "FLAT", data.astype(np.float32), np.sqrt(var).astype(np.float32), count, meta, inp.stats
    )


def _rows(a: np.ndarray | float, rows: slice) -> np.ndarray | float:
    return a[rows] if isinstance(a, np.ndarray) else a
