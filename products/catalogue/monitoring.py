"""Product types of the housekeeping monitoring: daily status reports and long-term trends.

``obs_id`` is ``hk-<day>`` for a daily report and ``hktrend-<period>-<last day>`` for trends;
the instrument is the housekeeping source (``ECLAIRS``, ``COLIBRI``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from svomflow.products.catalogue.models import FigureModel, FitsModel, TextModel
from svomflow.products.catalogue.registry import declare

__all__ = ["trends_preview"]

_MAX_PANELS = 16


def trends_preview(model: FitsModel) -> FigureModel:
    """Draw each parameter's mean and min-max band over the period (first 16 parameters)."""
    t = model.table("TRENDS")
    names = np.char.strip(np.asarray(t.column("PARAM")).astype(str))
    times = np.asarray(t.column("TIME"), dtype=float)
    params = list(dict.fromkeys(names.tolist()))[:_MAX_PANELS]
    t0 = float(t.card("TSTART", times.min() if times.size else 0.0))
    period = str(t.card("PERIOD", ""))

    def draw(fig: Any) -> None:
        ncol = 4 if len(params) > 4 else max(1, len(params))
        nrow = max(1, -(-len(params) // ncol))
        for k, name in enumerate(params):
            ax = fig.add_subplot(nrow, ncol, k + 1)
            sel = names == name
            days = (times[sel] - t0) / 86400.0
            ax.fill_between(days, t.column("MIN")[sel], t.column("MAX")[sel], alpha=0.3, lw=0)
            ax.plot(days, t.column("MEAN")[sel], lw=0.8)
            ax.set_title(name, fontsize=8)
            ax.tick_params(labelsize=6)
        fig.suptitle(f"housekeeping trends over the last {period} (days from start)", fontsize=9)

    nrow = max(1, -(-len(params) // 4))
    return FigureModel(draw=draw, size_in=(12.0, 2.2 * nrow + 0.6))


declare(
    "HKDAY",
    "Daily housekeeping status report of an instrument: per parameter min/mean/max, limits, "
    "last value and state, the day's alarms and plots (self-contained HTML)",
    instruments=("ECLAIRS", "COLIBRI"),
    model=TextModel,
)

declare(
    "HKTRND",
    "Long-term housekeeping trends of an instrument over a day, week, month or quarter: "
    "min/mean/max per bin and each parameter's fitted drift per day",
    instruments=("ECLAIRS", "COLIBRI"),
    model=FitsModel,
    extensions=("TRENDS", "DRIFTS"),
    preview=trends_preview,
)
