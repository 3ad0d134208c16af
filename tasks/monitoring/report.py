"""The daily housekeeping status report (one self-contained HTML page per instrument and day).

Pure: the day's data arrive as :class:`DailyInputs` (read from the housekeeping store by the
pipeline's ``read``); the step draws one figure per parameter category (min-max band, mean,
soft and hard limits, alarm times) and embeds them as PNG in the page, with a table of every
parameter (min, mean, max, last value and its state, samples, alarms) and the day's alarms.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from pydantic import Field
from svomflow.config.base import StepConfig
from svomflow.products.catalogue import Product, TextModel
from svomflow.tasks.step import step

__all__ = [
    "AlarmInfo",
    "DailyInputs",
    "DailyReportConfig",
    "ParamDay",
    "daily_report",
    "parameter_state",
]


class DailyReportConfig(StepConfig):
    """Configuration of the daily status report."""

    points: int = Field(default=288, ge=24, description="points per parameter plot (288: 5 min)")
    columns: int = Field(default=3, ge=1, le=6, description="plots per row in a category figure")


@dataclass(frozen=True)
class ParamDay:
    """One parameter over the day: definition, binned values and last sample."""

    name: str
    unit: str
    category: str
    description: str
    soft: tuple[float | None, float | None]
    hard: tuple[float | None, float | None]
    times: np.ndarray
    mean: np.ndarray
    min: np.ndarray
    max: np.ndarray
    n_samples: int
    last_value: float | None
    last_time: float | None


@dataclass(frozen=True)
class AlarmInfo:
    """An alarm of the day (times in unix s UTC)."""

    id: int
    parameter: str
    level: str
    rule: str
    state: str
    raised_at: float
    cleared_at: float | None
    value: float
    message: str
    acknowledged_by: str | None


@dataclass(frozen=True)
class DailyInputs:
    """The day's housekeeping of one instrument."""

    instrument: str
    day: str
    start: float
    end: float
    parameters: tuple[ParamDay, ...]
    alarms: tuple[AlarmInfo, ...]


def parameter_state(p: ParamDay, value: float | None) -> str:
    """Return ``hard``, ``soft``, ``ok`` or ``nodata`` for a value of a parameter."""
    if value is None or not np.isfinite(value):
        return "nodata"

    def outside(lim: tuple[float | None, float | None]) -> bool:
        lo, hi = lim
        return (lo is not None and value < lo) or (hi is not None and value > hi)

    return "hard" if outside(p.hard) else "soft" if outside(p.soft) else "ok"


_STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.2em .5em;font-size:.9em;text-align:right}
th{background:#f0f0f0} td.l{text-align:left}
.ok{background:#e6f4e6}.soft{background:#fff1c9}.hard{background:#f8d0d0}.nodata{background:#eee}
img{max-width:100%}
"""


def _png(fig: object) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return base64.b64encode(buf.getvalue()).decode()


def _category_figure(
    params: list[ParamDay], alarms: tuple[AlarmInfo, ...], inputs: DailyInputs, columns: int
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = min(columns, len(params))
    nrow = -(-len(params) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 2.6 * nrow), squeeze=False)
    for ax in axes.ravel()[len(params) :]:
        ax.set_visible(False)
    for ax, p in zip(axes.ravel(), params, strict=False):
        hours = (p.times - inputs.start) / 3600.0
        if p.times.size:
            ax.fill_between(hours, p.min, p.max, color="tab:blue", alpha=0.25, lw=0)
            ax.plot(hours, p.mean, color="tab:blue", lw=0.8)
        for lim, color in ((p.soft, "orange"), (p.hard, "red")):
            for v in lim:
                if v is not None:
                    ax.axhline(v, color=color, lw=0.8, ls="--")
        for a in alarms:
            if a.parameter == p.name:
                ax.axvline((a.raised_at - inputs.start) / 3600.0, color="red", lw=0.8, alpha=0.7)
        ax.set_xlim(0, (inputs.end - inputs.start) / 3600.0)
        ax.set_title(f"{p.name} ({p.unit})" if p.unit else p.name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("hours (UTC)", fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _fmt(x: float | None) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.4g}"


def _time(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _lim(lim: tuple[float | None, float | None]) -> str:
    return f"[{_fmt(lim[0])}, {_fmt(lim[1])}]"


def render_html(inputs: DailyInputs, config: DailyReportConfig) -> str:
    """Return the report page (HTML with the figures embedded)."""
    e = html.escape
    n_alarm = {p.name: 0 for p in inputs.parameters}
    for a in inputs.alarms:
        n_alarm[a.parameter] = n_alarm.get(a.parameter, 0) + 1
    rows = []
    for p in inputs.parameters:
        state = parameter_state(p, p.last_value)
        finite = p.n_samples > 0 and p.times.size > 0
        rows.append(
            f"<tr><td class='l'>{e(p.name)}</td><td class='l'>{e(p.category)}</td>"
            f"<td class='l'>{e(p.unit)}</td>"
            f"<td>{_fmt(float(np.min(p.min)) if finite else None)}</td>"
            f"<td>{_fmt(float(np.average(p.mean)) if finite else None)}</td>"
            f"<td>{_fmt(float(np.max(p.max)) if finite else None)}</td>"
            f"<td>{_lim(p.soft)}</td><td>{_lim(p.hard)}</td>"
            f"<td class='{state}'>{_fmt(p.last_value)} ({state})</td>"
            f"<td>{p.n_samples}</td><td>{n_alarm.get(p.name, 0)}</td></tr>"
        )
    alarm_rows = [
        f"<tr class='{e(a.level)}'><td>{a.id}</td><td class='l'>{e(a.parameter)}</td>"
        f"<td class='l'>{e(a.level)} ({e(a.rule)})</td><td class='l'>{e(a.state)}</td>"
        f"<td>{_time(a.raised_at)}</td><td>{_time(a.cleared_at)}</td><td>{_fmt(a.value)}</td>"
        f"<td class='l'>{e(a.message)}</td><td class='l'>{e(a.acknowledged_by or '-')}</td></tr>"
        for a in inputs.alarms
    ]
    figures = []
    categories: dict[str, list[ParamDay]] = {}
    for p in inputs.parameters:
        categories.setdefault(p.category or "other", []).append(p)
    for cat, params in categories.items():
        png = _category_figure(params, inputs.alarms, inputs, config.columns)
        figures.append(
            f"<h3>{e(cat)}</h3><img alt='{e(cat)} over {e(inputs.day)}' "
            f"src='data:image/png;base64,{png}'>"
        )
    worst = max(
        (parameter_state(p, p.last_value) for p in inputs.parameters),
        key=("nodata", "ok", "soft", "hard").index,
        default="nodata",
    )
    open_alarms = sum(a.state != "cleared" for a in inputs.alarms)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(inputs.instrument)} housekeeping {e(inputs.day)}</title><style>{_STYLE}</style></head>
<body>
<h1>{e(inputs.instrument)} housekeeping status, {e(inputs.day)} (UTC)</h1>
<p class="{worst}">Overall state at the end of the day: <b>{worst}</b>;
{len(inputs.alarms)} alarm(s) during the day, {open_alarms} still open;
{sum(p.n_samples for p in inputs.parameters)} samples of {len(inputs.parameters)} parameters.</p>
<h2>Parameters</h2>
<table><tr><th>parameter</th><th>category</th><th>unit</th><th>min</th><th>mean</th>
<th>max</th><th>soft limits</th><th>hard limits</th><th>last value (state)</th>
<th>samples</th><th>alarms</th></tr>
{"".join(rows)}
</table>
<h2>Alarms</h2>
{"<p>None.</p>" if not alarm_rows else ""}
{"<table><tr><th>id</th><th>parameter</th><th>level</th><th>state</th><th>raised</th><th>cleared</th><th>value</th><th>message</th><th>acknowledged by</th></tr>" + "".join(alarm_rows) + "</table>" if alarm_rows else ""}
<h2>Plots</h2>
<p>Blue band: min-max per {e(_resolution(inputs))}; line: mean; dashed: soft (orange) and
hard (red) limits; red vertical lines: alarms raised.</p>
{"".join(figures)}
<p><small>Made by svomflow on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.</small></p>
</body></html>
"""


def _resolution(inputs: DailyInputs) -> str:
    for p in inputs.parameters:
        if p.times.size > 1:
            return f"{float(np.median(np.diff(p.times))) / 60:.0f} min bin"
    return "bin"


@step(name="daily-hk-report", config=DailyReportConfig, outputs=("HKDAY",))
def daily_report(inputs: DailyInputs, *, config: DailyReportConfig) -> Product:
    """Return the day's status report of one instrument (HTML with embedded plots)."""
    return Product(
        "HKDAY",
        inputs.instrument,
        TextModel(render_html(inputs, config), "html"),
        obs_id=f"hk-{inputs.day}",
        content={
            "day": inputs.day,
            "parameters": len(inputs.parameters),
            "samples": sum(p.n_samples for p in inputs.parameters),
            "alarms": len(inputs.alarms),
            "open_alarms": sum(a.state != "cleared" for a in inputs.alarms),
        },
    )
