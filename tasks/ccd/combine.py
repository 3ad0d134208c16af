"""Sigma-clipped combination of frames, processed in row chunks so memory stays bounded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.tasks.ccd import _kernels as K

__all__ = ["CombineConfig", "combine_chunked", "combine_memory_bound", "combine_stack"]


class CombineConfig(StepConfig):
    """How frames are combined into a master (BANZAI-style sigma-clipped mean by default)."""

    method: Literal["mean", "median"] = Field(
        "mean", description="Statistic of the values kept after clipping"
    )
    center: Literal["median", "mean"] = Field(
        "median", description="Centre the clipping interval on the median or the mean"
    )
    scale: Literal["noise_model", "mad_std", "std"] = Field(
        "noise_model",
        description="Width used for clipping: the frames' known noise (read noise + Poisson, "
        "robust with few frames), the MAD-based sigma or the standard deviation of the values",
    )
    sigma_low: float = Field(3.0, gt=0, description="Lower clipping threshold in sigma")
    sigma_high: float = Field(3.0, gt=0, description="Upper clipping threshold in sigma")
    maxiters: int = Field(5, ge=0, description="Clipping iterations (0: no clipping)")
    chunk_rows: int = Field(256, ge=1, description="Rows combined at once (bounds memory)")


def _modes(config: CombineConfig) -> tuple[int, int, int]:
    center = K.CENTER_MEDIAN if config.center == "median" else K.CENTER_MEAN
    scale = {"mad_std": K.SCALE_MAD, "std": K.SCALE_STD, "noise_model": K.SCALE_MODEL}[config.scale]
    result = K.CENTER_MEDIAN if config.method == "median" else K.CENTER_MEAN
    return center, scale, result


def combine_memory_bound(nframes: int, nrows: int, ncols: int, chunk_rows: int) -> int:
    """Return the bytes :func:`combine_chunked` holds at most.

    ``chunk_rows * ncols * nframes * 4`` for the float32 chunk buffer, plus the outputs
    (float32 image and int16 count: ``nrows * ncols * 6``), plus one input chunk in float64
    while a loader converts it (``chunk_rows * ncols * 8``).
    """
    rows = min(chunk_rows, nrows)
    return rows * ncols * nframes * 4 + nrows * ncols * 6 + rows * ncols * 8


def combine_stack(
    stack: np.ndarray,
    config: CombineConfig | None = None,
    *,
    noise: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Combine an in-memory (nframes, rows, cols) stack; return (image float32, count int16).

    NaNs are ignored; pixels with no value left are NaN with count 0. ``noise`` is the
    per-frame noise model (see :func:`combine_chunked`).
    """
    config = config or CombineConfig()
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"stack must be 3-D (nframes, rows, cols), got shape {stack.shape}")
    nf, nr, nc = stack.shape

    def load(i: int, rows: slice) -> np.ndarray:
        return stack[i, rows]

    return combine_chunked(load, nf, (nr, nc), config, noise=noise)


def combine_chunked(
    load_rows: Callable[[int, slice], np.ndarray],
    nframes: int,
    shape: tuple[int, int],
    config: CombineConfig | None = None,
    *,
    noise: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Combine ``nframes`` frames of ``shape`` read chunk by chunk through ``load_rows``.

    Parameters
    ----------
    load_rows
        ``load_rows(i, rows)`` returns rows ``rows`` of frame ``i`` (already calibrated and
        scaled as the caller wants), shape ``(len(rows), ncols)``.
    nframes
        Number of frames (at least 1; 16-bit counts limit it to 32767).
    shape
        (rows, cols) of the output.
    config
        Clipping parameters and the chunk height.
    noise
        ``(a, b)``, one value per frame: frame ``f`` has variance ``a[f] + b[f] * signal``
        in the loaded units. Required when ``config.scale == "noise_model"``.

    Returns
    -------
    image, count
        The combined image (float32) and the number of frames kept per pixel (int16).
        Memory held: see :func:`combine_memory_bound`.
    """
    config = config or CombineConfig()
    if nframes < 1:
        raise ValueError("nothing to combine: no frames")
    if nframes > np.iinfo(np.int16).max:
        raise ValueError(f"too many frames to combine ({nframes})")
    nr, nc = shape
    center, scale, result = _modes(config)
    if scale == K.SCALE_MODEL:
        if noise is None:
            raise ValueError("scale='noise_model' needs the frames' noise model (a, b)")
        noise_a = np.ascontiguousarray(noise[0], dtype=np.float64)
        noise_b = np.ascontiguousarray(noise[1], dtype=np.float64)
        if noise_a.shape != (nframes,) or noise_b.shape != (nframes,):
            raise ValueError(f"noise model arrays must have one value per frame ({nframes})")
    else:
        noise_a = np.zeros(nframes)
        noise_b = np.zeros(nframes)
    out = np.empty((nr, nc), dtype=np.float32)
    count = np.empty((nr, nc), dtype=np.int16)
    rows_per = min(config.chunk_rows, nr)
    buf = np.empty((nframes, rows_per, nc), dtype=np.float32)
    for r0 in range(0, nr, rows_per):
        r1 = min(r0 + rows_per, nr)
        sl = slice(r0, r1)
        chunk = buf[:, : r1 - r0]
        for i in range(nframes):
            rows = load_rows(i, sl)
            if rows.shape != (r1 - r0, nc):
                raise ValueError(
                    f"frame {i}: rows {r0}:{r1} have shape {rows.shape}, expected {(r1 - r0, nc)}"
                )
            chunk[i] = rows
        K.clipped_combine(
            chunk,
            float(config.sigma_low),
            float(config.sigma_high),
            int(config.maxiters),
            center,
            scale,
            result,
            noise_a,
            noise_b,
            out[sl],
            count[sl],
        )
    return out, count
