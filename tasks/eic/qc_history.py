"""The QC history of calibration promotions: every verdict of the gate, per CALDB code.

One table per CALDB code and instrument (product ``CALQCH``, instrument code
``<INSTRUMENT>-<CODE>``, e.g. ``ECLAIRS-PIXGAIN``), in long form so any code fits: one row
per candidate and QC figure, with the current file's value it was compared with, the
verdict and its reasons. A candidate judged again (a re-run) replaces its rows. Its plot
(``CALQCP``) shows each figure over the last day, week, month and quarter, promoted
candidates as green dots and refused ones as red crosses.

The figures of the current CALDB file are read back from this table (the rows of the
promoted candidate with the same checksum), so the gate compares like with like without
re-measuring the current file.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack
from pydantic import Field
from svomflow.config.base import StepConfig
from svomflow.products.catalogue import FigureModel, FitsModel, Product
from svomflow.products.catalogue import eic_calib as _declared  # noqa: F401  (CALQCH, CALQCP)
from svomflow.tasks.eic.gate import QCFigure, Verdict
from svomflow.tasks.step import step

__all__ = [
    "EXTNAME",
    "CalibrationHistory",
    "HistoryConfig",
    "VerdictRecord",
    "current_figures",
    "history_code",
    "history_figure",
    "history_rows",
    "merge_history",
    "update_calibration_history",
]

#: Name of the table's FITS extension.
EXTNAME = "CALQCH"

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("TIME", "U23"),
    ("CODENAME", "U16"),
    ("INSTRUME", "U16"),
    ("DETNAM", "U16"),
    ("CANDIDATE", "U64"),
    ("FILE", "U120"),
    ("FIGURE", "U40"),
    ("VALUE", "f8"),
    ("UNIT", "U16"),
    ("CURRENT", "f8"),
    ("PROMOTED", "?"),
    ("REASON", "U200"),
)
_KEY = ("CODENAME", "INSTRUME", "DETNAM", "CANDIDATE")
_WINDOWS = (("day", 1.0), ("week", 7.0), ("month", 30.0), ("quarter", 91.0))


class HistoryConfig(StepConfig):
    """How the QC history plot is drawn."""

    max_figures: int = Field(
        8, ge=1, description="Most QC figures drawn per plot (the first ones by name order)"
    )


@dataclass(frozen=True)
class VerdictRecord:
    """A verdict with what identifies its candidate in the history.

    Attributes
    ----------
    verdict
        The gate's verdict.
    instrument, detector
        CALDB names of the candidate.
    time
        Validity start of the candidate (UTC): the history's time axis.
    sha256
        Checksum of the candidate file (its identity).
    filename
        Name of the candidate file.
    """

    verdict: Verdict
    instrument: str
    detector: str
    time: _dt.datetime
    sha256: str
    filename: str


def history_code(instrument: str, codename: str) -> str:
    """Return the instrument code of a code's history products (``ECLAIRS-PIXGAIN``)."""
    return f"{instrument.strip().upper()}-{codename.strip().upper()}"


def history_rows(record: VerdictRecord) -> list[dict[str, Any]]:
    """Return the history rows of one verdict (one per figure; one row if it has none)."""
    v = record.verdict
    current = {f.name: f.value for f in v.current}
    reason = "; ".join(v.reasons) if v.reasons else ("; ".join(v.notes) or "ok")
    time = (
        record.time.astimezone(_dt.UTC).replace(tzinfo=None) if record.time.tzinfo else record.time
    )
    base = {
        "TIME": time.isoformat(timespec="milliseconds"),
        "CODENAME": v.codename,
        "INSTRUME": record.instrument.strip().upper(),
        "DETNAM": record.detector.strip().upper(),
        "CANDIDATE": record.sha256,
        "FILE": record.filename[:120],
        "PROMOTED": v.promote,
        "REASON": reason[:200],
    }
    figures = v.figures or (QCFigure("", float("nan")),)
    return [
        {
            **base,
            "FIGURE": f.name,
            "VALUE": float(f.value),
            "UNIT": f.unit,
            "CURRENT": float(current.get(f.name, float("nan"))),
        }
        for f in figures
    ]


def _empty() -> Table:
    return Table(names=[n for n, _ in _COLUMNS], dtype=[t for _, t in _COLUMNS])


def merge_history(old: Table | None, rows: Sequence[dict[str, Any]]) -> Table:
    """Return the history with ``rows`` added; a candidate judged again replaces its rows."""
    new = _empty()
    for r in rows:
        new.add_row([r[n] for n, _ in _COLUMNS])
    if old is not None and len(old):
        keys = {tuple(str(r[k]) for k in _KEY) for r in new}
        keep = [tuple(str(r[k]) for k in _KEY) not in keys for r in old]
        table = vstack([old[keep], new], metadata_conflicts="silent")
    else:
        table = new
    table.sort(["TIME", "CODENAME", "CANDIDATE", "FIGURE"])
    return table


def current_figures(table: Table | None, sha256: str) -> list[QCFigure] | None:
    """Return the figures recorded when the file with this checksum was promoted, if it was."""
    if table is None or len(table) == 0:
        return None
    sel = (table["CANDIDATE"] == sha256) & np.asarray(table["PROMOTED"], dtype=bool)
    if not sel.any():
        return None
    return [
        QCFigure(str(r["FIGURE"]), float(r["VALUE"]), str(r["UNIT"]))
        for r in table[sel]
        if str(r["FIGURE"])
    ]


def history_hdus(table: Table) -> list[Any]:
    """Return the history as FITS HDUs (an empty primary, then the ``CALQCH`` table)."""
    hdu = fits.table_to_hdu(table)
    hdu.name = EXTNAME
    return [fits.PrimaryHDU(), hdu]


def history_figure(table: Table, title: str, max_figures: int = 8) -> FigureModel:
    """Draw each QC figure of a history over the last day, week, month and quarter.

    One row of panels per figure (the first ``max_figures`` names), one column per window
    ending 12 h after the newest candidate; promoted candidates are green dots, refused ones
    red crosses, and the current file's value each was compared with a grey tick.
    """
    named = table[table["FIGURE"] != ""] if len(table) else table
    names = sorted({str(n) for n in named["FIGURE"]})[:max_figures] if len(named) else []
    times = np.array([_dt.datetime.fromisoformat(str(t)) for t in named["TIME"]])
    end = (max(times) if len(times) else _dt.datetime(2000, 1, 1)) + _dt.timedelta(hours=12)
    nrow = max(len(names), 1)

    def draw(fig: Any) -> None:
        axes = fig.subplots(nrow, len(_WINDOWS), squeeze=False, sharey="row")
        for col, (label, days) in enumerate(_WINDOWS):
            start = end - _dt.timedelta(days=days)
            axes[0, col].set_title(f"last {label}")
            for row, name in enumerate(names):
                ax = axes[row, col]
                sel = np.asarray(named["FIGURE"] == name) & np.array(
                    [start <= t <= end for t in times], dtype=bool
                )
                passed = np.asarray(named["PROMOTED"], dtype=bool)
                value = np.asarray(named["VALUE"], dtype=float)
                cur = np.asarray(named["CURRENT"], dtype=float)
                if (sel & np.isfinite(cur)).any():
                    m = sel & np.isfinite(cur)
                    ax.plot(times[m], cur[m], "_", color="0.5", label="current")
                for mask, style, color, lab in (
                    (sel & passed, "o", "tab:green", "promoted"),
                    (sel & ~passed, "x", "tab:red", "refused"),
                ):
                    if mask.any():
                        ax.plot(times[mask], value[mask], style, color=color, label=lab)
                ax.set_xlim(start, end)
                ax.tick_params(axis="x", labelrotation=30, labelsize=7)
                if col == 0:
                    # an empty unit reads back from FITS as a masked "--"
                    units = {str(u) for u in named["UNIT"][named["FIGURE"] == name]} - {"", "--"}
                    ax.set_ylabel(name + (f" [{units.pop()}]" if len(units) == 1 else ""))
        if not names:
            axes[0, 0].text(0.5, 0.5, "no QC figures yet", ha="center", va="center")
        handles: dict[str, Any] = {}
        for ax in axes.flat:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(lab, h)
        if handles:
            fig.legend(list(handles.values()), list(handles), loc="upper right")
        fig.suptitle(f"QC history: {title}")
        fig.tight_layout()

    return FigureModel(draw=draw, size_in=(14.0, 1.2 + 2.2 * nrow), dpi=80)


@dataclass
class CalibrationHistory:
    """The history of one code after this verdict, and its products (``CALQCH``, ``CALQCP``)."""

    table: Table
    products: list[Product]


@step(name="calibration-qc-history", config=HistoryConfig, outputs=("CALQCH", "CALQCP"))
def update_calibration_history(
    previous: Table | None,
    records: list[VerdictRecord],
    instrument: str,
    codename: str,
    *,
    config: HistoryConfig,
) -> CalibrationHistory:
    """Add verdicts to a code's QC history and draw it.

    Parameters
    ----------
    previous
        The history as it stood (the newest ``CALQCH`` table of this code), or ``None``.
    records
        The verdicts to add (of this code and instrument).
    instrument, codename
        CALDB instrument and code of the history.
    config
        Plot settings.
    """
    rows = [row for rec in records for row in history_rows(rec)]
    table = merge_history(previous, rows)
    code = history_code(instrument, codename)
    products = [
        Product("CALQCH", code, FitsModel.from_hdus(history_hdus(table))),
        Product(
            "CALQCP", code, history_figure(table, f"{instrument} {codename}", config.max_figures)
        ),
    ]
    return CalibrationHistory(table, products)
