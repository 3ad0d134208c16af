"""MXT previews (PNG, drawn at publication): the counts image and the source light curves.

The image shows the sources' 90 % error circles; a light curve shows its error bars, its
Bayesian blocks and the data gaps shaded and labelled by cause (SAA, Earth, telemetry,
attitude).

Each ``draw_*`` function fills a matplotlib ``Figure`` it is given (no pyplot state, no
file); :func:`image_preview` and :func:`lightcurve_preview` wrap them with their data into a
:class:`~svomflow.products.catalogue.FigureModel` that the catalogue renders when it
publishes the preview.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray
from svomflow.products.catalogue import FigureModel

__all__ = [
    "GAP_COLOURS",
    "ImageSource",
    "draw_image",
    "draw_lightcurve",
    "image_preview",
    "lightcurve_preview",
]

GAP_COLOURS = {
    "SAA": "tab:red",
    "Earth": "tab:blue",
    "telemetry": "tab:orange",
    "attitude": "tab:purple",
}

# the resolution the previews have always been published at (PNG of 540 x 540 / 720 x 360)
_DPI = 90


@dataclass(frozen=True)
class ImageSource:
    """A source drawn on the image: detector position (pixels), 90 % radius (arcsec), label."""

    x: float
    y: float
    r90_arcsec: float
    label: str


def draw_image(
    fig: Any,
    image: NDArray[Any],
    sources: Sequence[ImageSource],
    *,
    pixel_scale_arcsec: float,
    title: str = "MXT",
) -> None:
    """Draw the counts image (log scale) with a circle of radius r90 per source."""
    from matplotlib.patches import Circle

    ax = fig.add_subplot()
    ax.imshow(
        np.log1p(image), origin="lower", cmap="magma", extent=(0, image.shape[1], 0, image.shape[0])
    )
    for s in sources:
        # the error circle is often smaller than a pixel: draw it at least 2 pixels wide
        r = max(s.r90_arcsec / pixel_scale_arcsec, 1.0)
        ax.add_patch(Circle((s.x, s.y), r, fill=False, color="cyan", lw=1.2))
        ax.add_patch(Circle((s.x, s.y), 8, fill=False, color="white", lw=0.6, ls="--"))
        ax.annotate(f'{s.label} r90={s.r90_arcsec:.1f}"', (s.x + 9, s.y + 9), color="white",
                    fontsize=7)  # fmt: skip
    ax.set_xlabel("RAWX (pixel)")
    ax.set_ylabel("RAWY (pixel)")
    ax.set_title(title)


def draw_lightcurve(
    fig: Any,
    lo: NDArray[np.float64],
    hi: NDArray[np.float64],
    rate: NDArray[np.float64],
    err: NDArray[np.float64],
    gaps: Sequence[tuple[float, float, str]],
    *,
    t0: float = 0.0,
    blocks: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]] | None = None,
    title: str = "",
) -> None:
    """Draw a light curve (rate with error bars), its Bayesian blocks and the labelled gaps."""
    ax = fig.add_subplot()
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


def image_preview(
    image: NDArray[Any], sources: Sequence[ImageSource], *, pixel_scale_arcsec: float
) -> FigureModel:
    """Return the image preview as a figure the catalogue renders on publication."""
    draw = partial(draw_image, image=image, sources=list(sources),
                   pixel_scale_arcsec=pixel_scale_arcsec)  # fmt: skip
    return FigureModel(draw=draw, size_in=(6.0, 6.0), dpi=_DPI)


def lightcurve_preview(
    lo: NDArray[np.float64],
    hi: NDArray[np.float64],
    rate: NDArray[np.float64],
    err: NDArray[np.float64],
    gaps: Sequence[tuple[float, float, str]],
    *,
    t0: float,
    blocks: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]] | None,
    title: str,
) -> FigureModel:
    """Return a light-curve preview as a figure the catalogue renders on publication."""
    draw = partial(draw_lightcurve, lo=lo, hi=hi, rate=rate, err=err, gaps=list(gaps), t0=t0,
                   blocks=blocks, title=title)  # fmt: skip
    return FigureModel(draw=draw, size_in=(8.0, 4.0), dpi=_DPI)
