"""The promotion gate: judge a calibration candidate against the current CALDB file.

A candidate goes into the CALDB only when it passes, in order:

1. **availability**: every figure a cut names was measured on the candidate;
2. **sanity**: those figures are finite and inside their ``absolute`` bounds;
3. **comparison**: the change from the current file's figure (``change``: candidate -
   current, ``relative``: candidate / current - 1) is inside its bounds, and so is every
   figure measured on both files together (``compared``: a fraction of pixels that moved).
   With no current file (the first of its code) the comparison cuts are not applied and the
   verdict says so.

The cuts are data (a pipeline YAML under ``config/pipelines/``), never code. The gate works
for any CALDB code: it sees only named numbers (:class:`QCFigure`).

Example
-------
>>> cuts = [Cut("median_gain", "absolute", 0.2, 0.4), Cut("median_gain", "relative", -0.02, 0.02)]
>>> v = judge("PIXGAIN", [QCFigure("median_gain", 0.31)], [QCFigure("median_gain", 0.30)], cuts)
>>> v.promote, v.reasons[0]
(False, 'median_gain changed by +3.333% (relative), above +2%')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field
from pydantic.dataclasses import dataclass as pydantic_dataclass
from svomflow.config.base import StepConfig

__all__ = ["Cut", "GateConfig", "QCFigure", "Verdict", "figure_map", "judge"]

CutKind = Literal["absolute", "change", "relative", "compared"]


@dataclass(frozen=True)
class QCFigure:
    """One named QC number of a calibration file (``median_gain``, ``fallback_fraction``).

    Attributes
    ----------
    name
        Figure name (the same name for a candidate and the current file).
    value
        Its value (NaN when it could not be measured: the sanity check fails).
    unit
        Unit, for tables and plots (``""`` for a ratio or a count).
    """

    name: str
    value: float
    unit: str = ""


@pydantic_dataclass(frozen=True)
class Cut:
    """Bounds on one figure: on the candidate's value, or on its change from the current one.

    Attributes
    ----------
    figure
        Name of the figure the cut applies to.
    kind
        ``absolute`` bounds the candidate's value; ``change`` bounds candidate - current
        (in the figure's unit); ``relative`` bounds candidate / current - 1; ``compared``
        bounds a figure measured on the candidate and the current file together (skipped,
        as the other comparisons, when there is no current file).
    low, high
        Inclusive bounds (``None``: no bound on that side).
    """

    figure: str
    kind: CutKind
    low: float | None = None
    high: float | None = None

    def describe(self) -> str:
        """Return the cut as one line (``median_gain relative in [-0.02, 0.02]``)."""
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "+inf" if self.high is None else f"{self.high:g}"
        return f"{self.figure} {self.kind} in [{lo}, {hi}]"


class GateConfig(StepConfig):
    """The cuts of one CALDB code (a section of a pipeline configuration)."""

    cuts: list[Cut] = Field(
        default_factory=list,
        description="Cuts on the candidate's QC figures (absolute), on their change from the "
        "current CALDB file (change: candidate - current; relative: candidate/current - 1) "
        "and on figures measured on both files (compared)",
    )
    require_current: bool = Field(
        False,
        description="Refuse a candidate when the CALDB has no current file of its code "
        "(otherwise the first file is promoted on its absolute cuts alone)",
    )


@dataclass(frozen=True)
class Verdict:
    """The gate's decision on a candidate.

    Attributes
    ----------
    codename
        CALDB code of the candidate.
    promote
        Whether it may go into the CALDB.
    reasons
        Why it may not (empty when it passes).
    figures
        The candidate's figures (what the QC history records).
    current
        The current file's figures it was compared with (empty without a current file).
    notes
        What the judgement could not do (no current file: comparison cuts not applied).
    """

    codename: str
    promote: bool
    reasons: tuple[str, ...]
    figures: tuple[QCFigure, ...]
    current: tuple[QCFigure, ...] = ()
    notes: tuple[str, ...] = ()


def figure_map(figures: Sequence[QCFigure]) -> dict[str, QCFigure]:
    """Return ``{name: figure}`` (the last one wins when a name repeats)."""
    return {f.name: f for f in figures}


def _pct(x: float) -> str:
    return f"{100.0 * x:+.4g}%"


def _bounds_failure(value: float, cut: Cut, fmt: str = "g", scale: float = 1.0) -> str | None:
    """Return ``"below L"`` / ``"above H"`` when ``value`` is outside the cut, else None."""

    def show(b: float) -> str:
        return _pct(b) if scale == 100.0 else f"{b:{fmt}}"

    if cut.low is not None and value < cut.low:
        return f"below {show(cut.low)}"
    if cut.high is not None and value > cut.high:
        return f"above {show(cut.high)}"
    return None


def _check(cut: Cut, fig: QCFigure | None, cur: dict[str, QCFigure] | None) -> str | None:
    """Return why ``fig`` fails ``cut`` (``cur``: the current file's figures), else None."""
    if fig is None:
        return f"{cut.figure} not measured on the candidate"
    if not math.isfinite(fig.value):
        return f"{cut.figure} of the candidate is not finite ({fig.value})"
    unit = f" {fig.unit}" if fig.unit else ""
    if cut.kind in ("absolute", "compared"):
        why = _bounds_failure(fig.value, cut)
        return f"{cut.figure} = {fig.value:.6g}{unit}, {why}" if why else None
    if cur is None:
        return None  # the first file of its code: nothing to compare with
    ref = cur.get(cut.figure)
    if ref is None or not math.isfinite(ref.value):
        return f"{cut.figure} of the current file is unknown: cannot compare"
    if cut.kind == "change":
        delta = fig.value - ref.value
        why = _bounds_failure(delta, cut)
        return f"{cut.figure} changed by {delta:+.6g}{unit}, {why}" if why else None
    if ref.value == 0.0:
        return f"{cut.figure} of the current file is 0: no relative change"
    rel = fig.value / ref.value - 1.0
    why = _bounds_failure(rel, cut, scale=100.0)
    return f"{cut.figure} changed by {_pct(rel)} (relative), {why}" if why else None


def judge(
    codename: str,
    candidate: Sequence[QCFigure],
    current: Sequence[QCFigure] | None,
    cuts: Sequence[Cut],
    *,
    require_current: bool = False,
) -> Verdict:
    """Judge a candidate's figures against the cuts and the current file's figures.

    Parameters
    ----------
    codename
        CALDB code of the candidate (recorded in the verdict).
    candidate
        The candidate's QC figures.
    current
        The current CALDB file's figures, or ``None`` when the CALDB has none of this code.
    cuts
        The cuts of this code (every one is applied; a comparison cut whose figure the
        current file lacks is a failure: the candidate cannot be compared).
    require_current
        Refuse the candidate when there is no current file.

    Returns
    -------
    Verdict
        ``promote`` is True only when every applicable cut passed.
    """
    cand = figure_map(candidate)
    cur = figure_map(current) if current is not None else None
    reasons: list[str] = []
    notes: list[str] = []
    if cur is None:
        if require_current:
            reasons.append(f"no current {codename} file in the CALDB to compare with")
        elif any(c.kind != "absolute" for c in cuts):
            notes.append(f"no current {codename} file: comparison cuts not applied")
    for cut in cuts:
        if cut.kind == "compared" and cur is None:
            continue  # measured on both files: nothing to measure
        why = _check(cut, cand.get(cut.figure), cur)
        if why:
            reasons.append(why)
    return Verdict(
        codename=codename.strip().upper(),
        promote=not reasons,
        reasons=tuple(reasons),
        figures=tuple(candidate),
        current=tuple(current or ()),
        notes=tuple(notes),
    )
