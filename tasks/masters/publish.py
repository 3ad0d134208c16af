"""The nightly calibration products: candidate masters, QC reports and the QC history.

Built here as catalogue products (declared in :mod:`svomflow.products.catalogue.masters`),
published by the runner with the raw frames each was built from, the merged configuration
and the masters it used:

* ``MASTER``: the candidate master, promoted or not (its ``QCPASS`` keyword says);
* ``QC`` (FITS report with the DIFFSIG map) and ``QCJSON`` (the same report as JSON);
* ``QCHIST``: the QC history table (every night so far, as it stood after this one);
* ``QCPLOT``: its plots, one per camera, type and filter.

A night has several candidates of one type (two filters, two exposures): the instrument
code of a group's products says which (``DDRAGO-B-dark-1x1-m100p0C-60s``), and ``obs_id``
is the night.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.table import Table
from svomflow.products.catalogue import FigureModel, FitsModel, Product, TextModel
from svomflow.products.catalogue import masters as _declared  # noqa: F401  (the types made here)
from svomflow.products.ccd_masters import MasterFrame
from svomflow.tasks.masters.qc import QCReport, qc_history_hdus

__all__ = ["candidate_products", "qc_history_products"]


def candidate_products(
    report: QCReport,
    master: MasterFrame | None,
    diff_sigma: np.ndarray | None,
    *,
    instrument: str,
    night: str,
    inputs: Sequence[str],
    used: dict[str, dict[str, Any]],
) -> list[Product]:
    """Return a group's products: its candidate (when built) and its two QC reports.

    A group without a candidate (too few usable frames, missing bias) still gets its QC
    reports, so the reason is on record.
    """
    codes = tuple(sorted({str(u["codename"]) for u in used.values()}))
    common: dict[str, Any] = {
        "obs_id": night,
        "inputs": tuple(inputs),
        "calibration": codes,
        "content": {"group": report.group},
    }
    out = []
    if master is not None:
        extra = [
            ("NIGHT", night, "night of the input frames"),
            ("QCPASS", report.passed, "passed validation"),
        ]
        out.append(
            Product("MASTER", instrument, FitsModel.from_hdus(master.hdus(extra=extra)), **common)
        )
    out.append(Product("QC", instrument, FitsModel.from_hdus(report.hdus(diff_sigma)), **common))
    out.append(Product("QCJSON", instrument, TextModel.json(report.to_dict()), **common))
    return out


def qc_history_products(
    table: Table,
    figures: Sequence[tuple[tuple[str, str, str], FigureModel]],
    *,
    instrument: str,
    night: str,
) -> list[Product]:
    """Return the QC history table (``QCHIST``) and its plots (``QCPLOT``) of ``night``.

    Their inputs are the run's (the night's QC reports); the table holds every night up to
    this one.
    """
    out = [Product("QCHIST", instrument, FitsModel.from_hdus(qc_history_hdus(table)), obs_id=night)]
    for (cam, typ, filt), fig in figures:
        out.append(Product("QCPLOT", f"{cam}-{typ}-{filt}", fig, obs_id=night))
    return out
