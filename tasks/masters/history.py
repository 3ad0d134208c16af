"""The QC history step: tonight's verdicts added to the history of every night so far."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from astropy.table import Table
from svomflow.products.catalogue import Product
from svomflow.tasks.masters.config import NightlyCalibrationConfig
from svomflow.tasks.masters.publish import qc_history_products
from svomflow.tasks.masters.qc import QCReport, history_row, merge_qc_history, qc_history_figures
from svomflow.tasks.step import step

__all__ = ["HistoryEntry", "QCHistory", "update_qc_history"]


@dataclass(frozen=True)
class HistoryEntry:
    """One row of the QC history: a group's report, its start, and why it was refused."""

    report: QCReport
    start: _dt.datetime
    refused: str | None = None


@dataclass
class QCHistory:
    """The QC history after tonight, and its products (``QCHIST`` and the ``QCPLOT`` plots)."""

    table: Table
    products: list[Product]


@step(name="qc-history", config=NightlyCalibrationConfig, outputs=("QCHIST", "QCPLOT"))
def update_qc_history(
    previous: Table | None,
    entries: list[HistoryEntry],
    instrument: str,
    night: str,
    *,
    config: NightlyCalibrationConfig,
) -> QCHistory:
    """Add tonight's rows to the QC history; draw level and noise per camera, type, filter.

    A row already present for the same night, camera, type and group is replaced (a re-run
    of a night does not duplicate its history).
    """
    rows = [
        history_row(e.report, e.start, None if e.refused is None else f"refused: {e.refused}")
        for e in entries
    ]
    table = merge_qc_history(previous, rows)
    products = qc_history_products(
        table, qc_history_figures(table), instrument=instrument, night=night
    )
    return QCHistory(table, products)
