"""MXT previews (PNG): the image with sources and 90 % error circles; light curves with
error bars and the data gaps shaded and labelled by cause (SAA, Earth, telemetry, attitude)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import NDArray
from svomflow.products.atomic import atomic_path

__all__ = ["GAP_COLOURS", "plot_image", "plot_lightcurve"]

GAP_COLOURS = {
    "SAA": "tab:red",
    "Earth": "tab:blue",
    "telemetry": "tab:orange",
    "attitude": "tab:purple",
}


def plot_image(
    image: NDArray[np.float64],
    sources: Sequence[tuple[float, float, float, str]],
    path: str | Path,
    *,
    pixel_scale_arcsec: float,
    title: str = "MXT",
) -> Path:
    """Write a PNG of the counts image with a circle of radius r90 (arcsec) per source.

    ``sources`` holds ``(x_pix, y_pix, r90_arcsec, label)``.
    """
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(
        np.log1p(image), origin="lower", cmap="magma", extent=(0, image.shape[1], 0, image.shape[0])
    )
    for x, y, r90, label in sources:
        # the error circle is often smaller than a pixel: draw it at least 2 pixels wide
        r = max(r90 / pixel_scale_arcsec, 1.0)
        ax.add_patch(plt.Circle((x, y), r, fill=False, color="cyan", lw=1.2))
        ax.add_patch(plt.Circle((x, y), 8, fill=False, color="white", lw=0.6, ls="--"))
        ax.annotate(f'{label} r90={r90:.1f}"', (x + 9, y + 9), color="white", fontsize=7)
    ax.set_xlabel("RAWX (pixel)")
    ax.set_ylabel("RAWY (pixel)")
    ax.set_title(title)
    return _save(fig, path)


def plot_lightcurve(
    lo: NDArray[np.float64],
    hi: NDArray[np.float64],
    rate: NDArray[np.float64],
    err: NDArray[np.float64],
    gaps: Sequence[tuple[float, float, str]],
    path: str | Path,
    *,
    t0: float = 0.0,
    blocks: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]] | None = None,
    title: str = "",
) -> Path:
    """Write a PNG of a light curve (rate with error bars), Bayesian blocks and labelled gaps."""
    fig, ax = plt.subplots(figsize=(8, 4))
    c = 0.5 * (lo + hi) - t0
    ax.errorbar(
        c, rate, yerr=err, xerr=0.5 * (hi - lo), fmt="o", ms=2, color="k", lw=0.8, label="rate"
    )
    if blocks is not None and blocks[0].size:
        blo, bhi, brate = blocks
        ax.hlines(brate, blo - t0, bhi - t0, color="tab:green", label="Bayesian blocks")
    seen = set()
    for a, b, label in gaps:
        ax.axvspan(a - t0, b - t0, color=GAP_COLOURS.get(label, "grey"), alpha=0.25,
                   label=None if label in seen else f"gap: {label}")  # fmt: skip
        seen.add(label)
    ax.set_xlabel(f"time - {t0:.1f} (s)")
    ax.set_ylabel("rate (count/s, PSF-corrected)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper right")
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(path)
