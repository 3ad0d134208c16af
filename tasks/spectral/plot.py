"""Count-spectrum plot of a fit: data and folded model per dataset, with residuals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from svomflow.tasks.spectral.fit import FitResult

__all__ = ["draw_fit", "plot"]


def draw_fit(result: FitResult, fig: Any, title: str | None = None) -> None:
    """Draw net count rate per keV with the folded model and residuals on a given figure.

    The background (scaled to the source) is subtracted from the data; error bars are
    Poisson (plus the background's variance). Used by :func:`plot` and by the products'
    previews, which draw on the figure the catalogue gives them.
    """
    problem = result.problem
    mus = problem.predicted(problem.values())
    ax, axr = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for k, (prep, mu) in enumerate(zip(problem.preps, mus, strict=True)):
        width = prep.e_hi - prep.e_lo
        centre = np.sqrt(np.maximum(prep.e_lo, 1e-3) * prep.e_hi)
        scale = 1.0 / (prep.exposure * width)
        net = prep.counts - prep.scaled_background
        var = np.maximum(prep.counts, 1.0)
        if prep.bkg is not None and prep.bkg_var is not None:
            var = var + prep.bkg_var / prep.r**2
        sigma = np.sqrt(var)
        color = f"C{k}"
        ax.errorbar(
            centre,
            net * scale,
            yerr=sigma * scale,
            xerr=[centre - prep.e_lo, prep.e_hi - centre],
            fmt="none",
            ecolor=color,
            label=prep.name,
        )
        ax.step(
            np.append(prep.e_lo, prep.e_hi[-1]),
            np.append(mu * scale, mu[-1] * scale[-1]),
            where="post",
            color=color,
        )
        axr.errorbar(centre, (net - mu) / sigma, yerr=1.0, fmt=".", color=color, ms=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel("counts / s / keV")
    ax.legend(fontsize="small")
    ax.set_title(
        title
        or f"{result.model.name} fit, {result.statistic} = {result.stat:.2f} / {result.dof} dof"
    )
    axr.axhline(0.0, color="k", lw=0.8)
    axr.set_xlabel("energy (keV)")
    axr.set_ylabel("(data - model) / sigma")
    fig.tight_layout()


def plot(result: FitResult, path: str | Path | None = None, title: str | None = None) -> Any:
    """Plot a fit (:func:`draw_fit`) on a new figure; write a PNG when ``path`` is given.

    Returns the matplotlib figure (shown inline in a notebook).
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(7, 6))
    draw_fit(result, fig, title)
    if path is not None:
        from svomflow.atomic import atomic_path

        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
    return fig
