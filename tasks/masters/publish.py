"""Publish the nightly calibration products (candidates, QC reports, QC history) with provenance.

The nightly flow keeps its working area (candidates and QC reports per group, the cumulative
QC history) and the CALDB registration as they are; this module records those files as
products of the night (``obs_id`` = the night, ``YYYY-MM-DD``) through
:class:`~svomflow.products.ProductStore`, each with the raw frames it was built from
(checksums), the merged configuration and the masters it used (bias/dark for darks and
flats, the current master it was compared with) with their CALDB index version.

Type codes: ``MASTER_<group>`` (the candidate, promoted or not: its ``QCPASS`` keyword says),
``QC_<group>`` (FITS report) and ``QCJSON_<group>`` (JSON report), ``QCHIST`` (the QC history
table) and ``QCPLOT_<camera>_<type>_<filter>`` (history plots).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from svomflow.products.content import copy_file, fits_hdus
from svomflow.products.provenance import CalibrationRef, Provenance
from svomflow.products.store import ProductRef, ProductStore

__all__ = ["publish_candidate", "publish_qc_history"]

FLOW_NAME = "nightly_master_calibration"


def _calibration_refs(used: Mapping[str, Mapping[str, Any]]) -> list[CalibrationRef]:
    from svomflow.products.atomic import sha256_file

    return [
        CalibrationRef(
            codename=f"{u['codename']}" + ("" if role != "current" else "_CURRENT"),
            path=str(u["path"]),
            sha256=str(u.get("sha256") or sha256_file(u["path"])),
            index_version=u.get("index_version"),
        )
        for role, u in sorted(used.items())
    ]


def publish_candidate(
    store: ProductStore,
    *,
    night: str,
    instrument: str,
    group: str,
    config: Mapping[str, Any],
    inputs: Sequence[str],
    calibration_used: Mapping[str, Mapping[str, Any]],
    candidate: str | None,
    report_fits: str | None,
    report_json: str,
) -> list[ProductRef]:
    """Publish one group's candidate master and QC reports; return their references.

    A group without a candidate (too few usable frames, missing bias) still gets its QC
    reports published, so the reason is on record.
    """
    prov = Provenance.start(
        config=config,
        inputs=inputs,
        calibration=_calibration_refs(calibration_used),
        flow_name=FLOW_NAME,
    )

    def pub(content: Any, code: str, ext: str = "fits") -> ProductRef:
        return store.publish(
            content, type_code=code, instrument=instrument, obs_id=night, provenance=prov, ext=ext
        )

    refs = []
    if candidate:
        refs.append(pub(fits_hdus(candidate), f"MASTER_{group}"))
    if report_fits and Path(report_fits).is_file():
        refs.append(pub(fits_hdus(report_fits), f"QC_{group}"))
    refs.append(pub(copy_file(report_json), f"QCJSON_{group}", "json"))
    return refs


def publish_qc_history(
    store: ProductStore,
    *,
    night: str,
    instrument: str,
    config: Mapping[str, Any],
    reports: Sequence[str],
    history: str,
    plots: Sequence[str],
) -> list[ProductRef]:
    """Publish the QC history table and its plots as products of ``night``.

    Their inputs are the night's QC reports; the table holds every night up to this one
    (each night's product is the history as it stood after that night).
    """
    prov = Provenance.start(config=config, inputs=reports, flow_name=FLOW_NAME)
    refs = [
        store.publish(
            fits_hdus(history),
            type_code="QCHIST",
            instrument=instrument,
            obs_id=night,
            provenance=prov,
        )
    ]
    for p in plots:
        code = "QCPLOT_" + Path(p).stem.removeprefix("qc_")
        refs.append(
            store.publish(
                copy_file(p),
                type_code=code,
                instrument=instrument,
                obs_id=night,
                provenance=prov,
                ext="png",
            )
        )
    return refs
