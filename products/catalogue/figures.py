"""Drawing helpers shared by the catalogue's previews."""

from __future__ import annotations

from typing import Any

import numpy as np
from svomflow.products.catalogue.models import FigureModel

__all__ = ["image_view"]


def image_view(
    data: np.ndarray | None,
    title: str,
    label: str,
    *,
    cmap: str = "gray",
    size_in: tuple[float, float] = (6.0, 5.0),
) -> FigureModel:
    """Draw a greyscale view of an image (5-99.5 percentile stretch) with a colour bar."""

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        if data is None or not np.isfinite(data).any():
            ax.text(0.5, 0.5, "no image", transform=ax.transAxes, ha="center")
            ax.set_axis_off()
        else:
            # a preview is a few hundred pixels wide: every k-th pixel is enough, and fast
            k = max(1, max(data.shape) // 1024)
            view = data[::k, ::k]
            lo, hi = np.nanpercentile(view, [5, 99.5])
            extent = (-0.5, data.shape[1] - 0.5, -0.5, data.shape[0] - 0.5)
            im = ax.imshow(view, origin="lower", cmap=cmap, vmin=lo, vmax=hi, extent=extent)
            fig.colorbar(im, ax=ax, label=label)
            ax.set_xlabel("x (pix)")
            ax.set_ylabel("y (pix)")
        ax.set_title(title)

    return FigureModel(draw=draw, size_in=size_in)
