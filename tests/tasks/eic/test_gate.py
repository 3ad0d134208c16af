"""The promotion gate's judgement and the QC history table (pure parts)."""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from svomflow.tasks.eic.gate import Cut, GateConfig, QCFigure, judge
from svomflow.tasks.eic.qc_history import (
    HistoryConfig,
    VerdictRecord,
    current_figures,
    history_rows,
    merge_history,
    update_calibration_history,
)

CUTS = [
    Cut("gain", "absolute", 0.2, 0.4),
    Cut("gain", "relative", -0.05, 0.05),
    Cut("offset", "change", -1.0, 1.0),
    Cut("fallback", "absolute", None, 0.1),
]


def _figs(gain: float, offset: float, fallback: float = 0.0) -> list[QCFigure]:
    return [
        QCFigure("gain", gain, "keV/chan"),
        QCFigure("offset", offset, "keV"),
        QCFigure("fallback", fallback),
    ]


def test_passing_candidate_is_promoted_with_no_reason() -> None:
    v = judge("pixgain", _figs(0.30, 1.0), _figs(0.30, 1.5), CUTS)
    assert v.promote and v.reasons == () and v.codename == "PIXGAIN"
    assert {f.name for f in v.current} == {"gain", "offset", "fallback"}


def test_each_kind_of_cut_refuses_with_its_reason() -> None:
    v = judge("PIXGAIN", _figs(0.45, 1.0, 0.2), _figs(0.30, -0.5), CUTS)
    assert not v.promote
    text = " | ".join(v.reasons)
    assert "gain = 0.45 keV/chan, above 0.4" in text
    assert "(relative), above +5%" in text  # 0.45/0.30 - 1 = +50 %
    assert "offset changed by +1.5 keV, above 1" in text
    assert "fallback = 0.2, above 0.1" in text
    assert len(v.reasons) == 4


def test_missing_or_non_finite_figure_is_a_failure() -> None:
    v = judge("X", [QCFigure("gain", math.nan)], None, CUTS)
    assert not v.promote
    assert any("not finite" in r for r in v.reasons)
    assert any("offset not measured" in r for r in v.reasons)


def test_first_file_skips_comparison_cuts_and_says_so() -> None:
    v = judge("PIXGAIN", _figs(0.30, 50.0), None, CUTS)
    assert v.promote
    assert v.notes and "comparison cuts not applied" in v.notes[0]
    refused = judge("PIXGAIN", _figs(0.30, 50.0), None, CUTS, require_current=True)
    assert not refused.promote and "no current PIXGAIN" in refused.reasons[0]


def test_current_without_the_figure_cannot_be_compared() -> None:
    v = judge("PIXGAIN", _figs(0.30, 1.0), [QCFigure("gain", 0.30)], CUTS)
    assert not v.promote
    assert v.reasons == ("offset of the current file is unknown: cannot compare",)


def test_random_figures_promote_exactly_when_every_cut_holds() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        g, g0 = rng.uniform(0.15, 0.45, 2)
        o, o0 = rng.uniform(-2, 2, 2)
        fb = rng.uniform(0, 0.15)
        expected = (
            0.2 <= g <= 0.4 and -0.05 <= g / g0 - 1 <= 0.05 and -1 <= o - o0 <= 1 and fb <= 0.1
        )
        assert judge("C", _figs(g, o, fb), _figs(g0, o0), CUTS).promote == expected


def test_cuts_are_read_from_configuration_data() -> None:
    cfg = GateConfig.model_validate(
        {"cuts": [{"figure": "gain", "kind": "relative", "low": -0.1, "high": 0.1}]}
    )
    assert cfg.cuts == [Cut("gain", "relative", -0.1, 0.1)]
    with pytest.raises(ValidationError):
        GateConfig.model_validate({"cuts": [{"figure": "gain", "kind": "ratio"}]})
    with pytest.raises(ValidationError):
        GateConfig.model_validate({"cut": []})


def _record(sha: str, gain: float, promote_against: float | None, day: int) -> VerdictRecord:
    cur = None if promote_against is None else _figs(promote_against, 0.0)
    v = judge("PIXGAIN", _figs(gain, 0.0), cur, CUTS)
    return VerdictRecord(
        v, "ECLAIRS", "NONE", _dt.datetime(2026, 1, day, tzinfo=_dt.UTC), sha, f"{sha}.fits"
    )


def test_history_replaces_a_rejudged_candidate_and_gives_back_current_figures() -> None:
    first = _record("a" * 64, 0.30, None, 1)
    bad = _record("b" * 64, 0.36, 0.30, 2)  # +20 %: refused
    table = merge_history(None, history_rows(first))
    table = merge_history(table, history_rows(bad))
    assert len(table) == 6
    assert list(table["PROMOTED"]) == [True] * 3 + [False] * 3
    again = merge_history(table, history_rows(bad))
    assert len(again) == 6  # a re-run does not duplicate
    figs = current_figures(again, "a" * 64)
    assert figs is not None and {f.name: f.value for f in figs}["gain"] == pytest.approx(0.30)
    assert current_figures(again, "b" * 64) is None  # refused: never current
    cur = again[(again["CANDIDATE"] == "b" * 64) & (again["FIGURE"] == "gain")]
    assert float(cur["CURRENT"][0]) == pytest.approx(0.30)
    assert "relative" in str(cur["REASON"][0])


def test_history_step_makes_table_and_plot_products(tmp_path: Path) -> None:
    recs = [_record(f"{i:064x}", 0.30 + 0.001 * i, 0.30, 1 + i) for i in range(5)]
    out = update_calibration_history.run(None, recs, "ECLAIRS", "PIXGAIN", config=HistoryConfig())
    assert [p.type_code for p in out.products] == ["CALQCH", "CALQCP"]
    assert {p.instrument for p in out.products} == {"ECLAIRS-PIXGAIN"}
    assert len(out.table) == 15 and bool(np.all(out.table["PROMOTED"]))
    out.products[1].model.write(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
