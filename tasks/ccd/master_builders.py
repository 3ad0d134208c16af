"""Master bias, dark and flat builders: overscan, calibration of each frame, chunked combine.

Each builder reads its frames (a :class:`~svomflow.products.ccd_frames.FrameStack`, which
opens the files on demand) twice: once whole, one frame at a time, for the overscan level
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from svomflow.errors import InputDataError
from svomflow.instruments.ccd_camera import CameraModel
from svomflow.products.ccd_frames import FrameStack, RawFrameInfo, read_frame_info
from svomflow.products.ccd_masters import MasterFrame
from svomflow.tasks.ccd.combine import CombineConfig, combine_chunked
from svomflow.tasks.ccd.overscan import OverscanConfig, overscan_vector

__all__ = [
    "Frames",
    "build_master_bias",
    "build_master_dark",
    "build_master_flat",
    "frame_stack",
    "robust_std",
]

#: What a builder combines: a frame stack, or frame files (their headers are read first).
Frames = FrameStack | Sequence[str | Path]


def frame_stack(frames: Frames, camera: CameraModel) -> FrameStack:
    """Return ``frames`` as a :class:`FrameStack` (reading the headers of frame files)."""
    if isinstance(frames, FrameStack):
        return frames
    return FrameStack([read_frame_info(p, camera) for p in frames])


def robust_std(values: np.ndarray) -> float:
    """Return the MAD-based standard deviation of the finite values (1.4826 x MAD)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


def _iso(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


class _Inputs:
    """Raw frames of one group: headers, overscan vectors and row-chunk access."""

    def __init__(self, frames: Frames, camera: CameraModel, overscan: OverscanConfig) -> None:
        self.stack = frame_stack(frames, camera)
        if not len(self.stack):
            raise InputDataError("no frames to combine")
        self.camera = camera
        self.overscan = overscan
        self.infos: list[RawFrameInfo] = self.stack.infos
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
        for i, info in enumerate(self.infos):
            raw = self.stack.frame(i, cam)
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

    def loader(
        self, transform: Callable[[int, slice, np.ndarray], np.ndarray]
    ) -> Callable[[int, slice], np.ndarray]:
        """Return ``load_rows(i, rows)`` giving calibrated rows of frame ``i`` (inside ``open``)."""

        def load(i: int, rows: slice) -> np.ndarray:
            img = self.stack.rows(i, rows, self.cols)
            img -= self.vectors[i][rows, None].astype(np.float32)
            return transform(i, rows, img)

        return load


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
    frames: Frames,
    camera: CameraModel,
    *,
    overscan: OverscanConfig | None = None,
    combine: CombineConfig | None = None,
) -> MasterFrame:
    """Build a master bias (ADU, overscan-corrected) from raw bias frames."""
    overscan = overscan or OverscanConfig()
    combine = combine or CombineConfig()
    inp = _Inputs(frames, camera, overscan)
    inp.first_pass()
    rn2 = np.array([st["overscan_noise"] ** 2 for st in inp.stats])
    model = (rn2, np.zeros_like(rn2))
    with inp.stack.open():
        load = inp.loader(lambda i, rows, img: img)
        data, count = combine_chunked(load, len(inp.infos), inp.shape, combine, noise=model)
        noise = _residual_noise(load, len(inp.infos), data, inp.shape, combine.chunk_rows)
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
    frames: Frames,
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
    inp = _Inputs(frames, camera, overscan)
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
    with inp.stack.open():
        load = inp.loader(lambda i, rows, img: (img - b[rows]) * (factors[i] / exps[i]))
        data, count = combine_chunked(load, len(inp.infos), inp.shape, combine, noise=model)
        noise = _residual_noise(load, len(inp.infos), data, inp.shape, combine.chunk_rows)
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
    frames: Frames,
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
    inp = _Inputs(frames, camera, overscan)
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
    with inp.stack.open():
        load = inp.loader(
            lambda i, rows, img: (img - b[rows] - _rows(darks[i], rows) * exps[i]) / scales[i]
        )
        data, count = combine_chunked(load, len(inp.infos), inp.shape, combine, noise=model)
        noise = _residual_noise(load, len(inp.infos), data, inp.shape, combine.chunk_rows)
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
