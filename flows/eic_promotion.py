"""Promote a calibration candidate into the CALDB through the gate, and keep its QC history.

Any calibration flow (any CALDB code) hands its candidate file and QC figures to
:func:`promote` (plain Python) or :data:`promote_task` (the same, as a Prefect task)::

    request = PromotionRequest(
        path=str(candidate_file), codename="PIXGAIN", telescope="SVOM", instrument="ECLAIRS",
        valid_from=start, figures=(QCFigure("median_gain", 0.301, "keV/chan"), ...),
        gate=GateConfig(cuts=[Cut("median_gain", "relative", -0.05, 0.05)]),
    )
    result = promote_task(request, ctx, caldb_root=caldb_root, measure=figures_of_file)

What happens, in order:

1. the current file of the same code (instrument, detector, filter) at the candidate's
   validity start is selected in the CALDB (the candidate itself excluded, so a re-run
   compares with the same file as the first run);
2. its QC figures are read back from the code's QC history (the rows recorded when it was
   promoted), else measured by ``measure(path)`` when given; ``compare(candidate, current)``
   adds figures that need both files (a fraction of pixels that moved);
3. :func:`~svomflow.tasks.eic.gate.judge` decides; a passing candidate is registered in the
   CALDB (registering the same bytes again returns the existing entry); a failing one is not,
   and the current file stays;
4. the verdict is added to the code's QC history, published through the catalogue as
   ``CALQCH`` (table) and ``CALQCP`` (plot), instrument code ``<INSTRUMENT>-<CODE>``.

Run one promotion of a given code at a time (a code's history is read, extended and
written back).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astropy.table import Table
from prefect import task
from prefect.cache_policies import NO_CACHE
from svomflow.atomic import sha256_file
from svomflow.calibration.caldb import CaldbEntry, choose_entry, open_caldb
from svomflow.errors import CalibrationNotFoundError
from svomflow.flows.adapter import FlowContext, publish_flow_products, transient_error
from svomflow.tasks.eic.gate import GateConfig, QCFigure, Verdict, judge
from svomflow.tasks.eic.qc_history import (
    EXTNAME,
    HistoryConfig,
    VerdictRecord,
    current_figures,
    history_code,
    update_calibration_history,
)

__all__ = [
    "PromotionRequest",
    "PromotionResult",
    "latest_history",
    "promote",
    "promote_task",
    "select_current",
]

#: ``measure(path) -> figures`` of a calibration file of one code.
Measure = Callable[[Path], Sequence[QCFigure]]
#: ``compare(candidate path, current path) -> figures`` that need both files.
Compare = Callable[[Path, Path], Sequence[QCFigure]]


@dataclass(frozen=True)
class PromotionRequest:
    """A candidate calibration file, its QC figures, and the cuts of its code.

    Attributes
    ----------
    path
        The candidate file.
    codename, telescope, instrument, detector, filter
        Its CALDB names (``detector``/``filter`` ``NONE`` = any).
    valid_from
        Its validity start (UTC).
    figures
        Its QC figures (measured by the calibration step that made it).
    gate
        The cuts of its code (from the calling flow's pipeline configuration).
    boundaries
        CALDB boundary expressions of the candidate (``CAL_CBD``).
    description
        ``CAL_DESC`` (at most 70 characters).
    cal_class
        ``BCF`` or ``CPF``.
    """

    path: str
    codename: str
    telescope: str
    instrument: str
    valid_from: _dt.datetime
    figures: tuple[QCFigure, ...]
    gate: GateConfig = field(default_factory=GateConfig)
    detector: str = "NONE"
    filter: str = "NONE"
    boundaries: tuple[str, ...] = ()
    description: str = ""
    cal_class: str = "BCF"


@dataclass(frozen=True)
class PromotionResult:
    """What the gate decided and where things are.

    Attributes
    ----------
    verdict
        The gate's verdict.
    entry
        The candidate's CALDB entry when promoted (else ``None``).
    current
        The CALDB entry it was compared with (``None``: the first of its code).
    history, plot
        Paths of the code's QC history table and plot after this verdict.
    products
        Paths of every product published.
    """

    verdict: Verdict
    entry: CaldbEntry | None
    current: CaldbEntry | None
    history: str | None
    plot: str | None
    products: tuple[str, ...] = ()

    @property
    def promoted(self) -> bool:
        """Whether the candidate is in the CALDB."""
        return self.entry is not None

    def summary(self) -> dict[str, Any]:
        """Return the result as a JSON-able mapping (for flow summaries and ``--json``)."""
        return {
            "codename": self.verdict.codename,
            "promoted": self.promoted,
            "reasons": list(self.verdict.reasons),
            "notes": list(self.verdict.notes),
            "figures": {f.name: f.value for f in self.verdict.figures},
            "current_figures": {f.name: f.value for f in self.verdict.current},
            "caldb_entry": None if self.entry is None else self.entry.id,
            "caldb_path": None if self.entry is None else str(self.entry.path),
            "current_entry": None if self.current is None else self.current.id,
            "current_path": None if self.current is None else str(self.current.path),
            "qc_history": self.history,
            "qc_plot": self.plot,
        }


def select_current(caldb: Any, request: PromotionRequest, sha256: str) -> CaldbEntry | None:
    """Return the CALDB file the candidate would replace, or ``None`` for the first of its code.

    The newest good file of the same code and names valid at the candidate's start, other
    than the candidate's own bytes (HEASARC selection rules).
    """
    pool = [
        e for e in caldb.list(instrument=request.instrument, codename=request.codename)
        if e.sha256 != sha256
    ]  # fmt: skip
    try:
        entry: CaldbEntry = choose_entry(
            pool,
            request.codename,
            instrument=request.instrument,
            time=request.valid_from,
            detector=request.detector,
            filter=request.filter,
        )
    except CalibrationNotFoundError:
        return None
    return entry.verify()


def latest_history(ctx: FlowContext, instrument: str, codename: str) -> Table | None:
    """Return a code's QC history as it stands (its newest ``CALQCH`` product), if any."""
    rows = ctx.store().list(type_code="CALQCH", instrument=history_code(instrument, codename))
    rows = [r for r in rows if Path(r.path).is_file()]
    if not rows:
        return None
    return Table.read(max(rows, key=lambda r: r.created).path, hdu=EXTNAME)


def _register(caldb: Any, request: PromotionRequest, sha256: str) -> CaldbEntry:
    for e in caldb.list(instrument=request.instrument, codename=request.codename):
        if e.sha256 == sha256:
            return e  # the same bytes promoted before (a re-run)
    entry: CaldbEntry = caldb.register(
        request.path,
        telescope=request.telescope,
        instrument=request.instrument,
        codename=request.codename,
        detector=request.detector,
        filter=request.filter,
        boundaries=list(request.boundaries),
        valid_from=request.valid_from,
        quality=0,
        description=request.description[:70],
        cal_class=request.cal_class,
    )
    return entry


def promote(
    request: PromotionRequest,
    ctx: FlowContext,
    *,
    caldb_root: str | None = None,
    measure: Measure | None = None,
    compare: Compare | None = None,
    history: HistoryConfig | None = None,
    inputs: Sequence[str] = (),
) -> PromotionResult:
    """Judge a candidate against the current CALDB file, promote it if it passes, record it.

    Parameters
    ----------
    request
        The candidate, its figures and the cuts.
    ctx
        Where the QC history products go (output root, database, run key).
    caldb_root
        CALDB location (default ``$SVOMFLOW_CALDB`` or the home's).
    measure
        Measures the QC figures of a file of this code: used for the current file when the
        QC history does not hold them (a file registered outside the gate). Without it, such
        a current file cannot be compared and comparison cuts refuse the candidate.
    compare
        Figures that need both files (added to the candidate's figures when there is a
        current file; cut them with ``kind="compared"``).
    history
        Plot settings of the QC history.
    inputs
        Input files recorded in the history products' provenance (default: the candidate).

    Returns
    -------
    PromotionResult
        The verdict, the CALDB entries and the QC history products.
    """
    caldb = open_caldb(caldb_root)
    cand_path = Path(request.path)
    sha = sha256_file(cand_path)
    current = select_current(caldb, request, sha)
    previous = latest_history(ctx, request.instrument, request.codename)
    figures = list(request.figures)
    cur_figures: list[QCFigure] | None = None
    if current is not None:
        cur_figures = current_figures(previous, current.sha256 or "")
        if cur_figures is None:
            cur_figures = list(measure(Path(current.path))) if measure is not None else []
        if compare is not None:
            figures += list(compare(cand_path, Path(current.path)))
    verdict = judge(
        request.codename,
        figures,
        cur_figures,
        request.gate.cuts,
        require_current=request.gate.require_current,
    )
    entry = _register(caldb, request, sha) if verdict.promote else None
    record = VerdictRecord(
        verdict, request.instrument, request.detector, request.valid_from, sha, cand_path.name
    )
    hist = update_calibration_history.run(
        previous,
        [record],
        request.instrument,
        request.codename,
        config=history or HistoryConfig(),
    )
    refs = publish_flow_products(
        ctx,
        {"gate": request.gate.model_dump(mode="json")},
        hist.products,
        name=update_calibration_history.name,
        inputs=list(inputs) or [str(cand_path)],
    )
    table = [r.path for r in refs if r.type_code == "CALQCH"]
    plot = [r.path for r in refs if r.type_code == "CALQCP"]
    return PromotionResult(
        verdict=verdict,
        entry=entry,
        current=current,
        history=table[0] if table else None,
        plot=plot[0] if plot else None,
        products=tuple(r.path for r in refs),
    )


@task(
    name="promote-calibration",
    task_run_name="promote-{request.codename}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 5],
    retry_condition_fn=lambda t, r, s: transient_error(t, r, s),
)
def promote_task(
    request: PromotionRequest,
    ctx: FlowContext,
    *,
    caldb_root: str | None = None,
    measure: Measure | None = None,
    compare: Compare | None = None,
    history: HistoryConfig | None = None,
    inputs: Sequence[str] = (),
) -> PromotionResult:
    """Run :func:`promote` as a Prefect task (retried on I/O and database errors only).

    Judging and registering again is idempotent: a retry finds the same current file and
    registers the same bytes once.
    """
    return promote(
        request,
        ctx,
        caldb_root=caldb_root,
        measure=measure,
        compare=compare,
        history=history,
        inputs=inputs,
    )
