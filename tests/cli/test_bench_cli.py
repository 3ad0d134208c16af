"""``svomflow bench``: flow-dependent default scenario, detection summary, user errors."""

from __future__ import annotations

from typing import Any

import pytest
from svomflow.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()


def _fake_report(flow: str, **kw: Any) -> dict[str, Any]:
    q = {
        "unit": "arcsec",
        "n": 38,
        "bias": 3.0,
        "bias_err": 0.3,
        "scatter": 1.5,
        "median_abs_error": 2.9,
        "median_reported_error": 5.0,
        "coverage": 0.9,
        "coverage_low": 0.75,
        "coverage_high": 0.97,
        "nominal_coverage": 0.9,
        "consistent": True,
    }
    return {
        "flow": flow,
        "scenario": kw["scenario"],
        "trials": kw["trials"],
        "succeeded": 19,
        "wall_s": 1.0,
        "quantities": {"position_all": q},
        "counts": {"injected": 20, "detected": 19, "false": 2, "detected_afterglow": 19},
        "failures": [{"trial": 4, "seed": 9, "reason": "InputDataError: x (f.py:1)"}],
        "trial_results": [],
    }


def test_mxt_bench_prints_completeness_and_false_detections(monkeypatch) -> None:
    import svomflow.simulation.bench as bench

    seen: dict[str, Any] = {}

    def fake(flow: str, **kw: Any) -> dict[str, Any]:
        seen.update(kw, flow=flow)
        return _fake_report(flow, **kw)

    monkeypatch.setattr(bench, "run_bench", fake)
    res = runner.invoke(app, ["bench", "mxt", "--trials", "20", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert seen["scenario"] == "mxt_one_source"  # the mxt bench's default scenario
    # 19 of 20 found; Clopper-Pearson 95 % interval of 19/20 is [0.751, 0.999]
    assert "19/20 injected sources found (completeness 0.950 [0.751, 0.999])" in res.output
    assert "2 false detections (0.11 per field)" in res.output
    assert "trial 4 (seed 9) failed" in res.output


@pytest.mark.parametrize("flow", ["nope", "xband"])
def test_unknown_bench_is_a_one_line_error(flow: str) -> None:
    res = runner.invoke(app, ["bench", flow, "--trials", "1"])
    assert res.exit_code != 0
    assert "no bench for flow" in res.output and "Traceback" not in res.output
