"""``svomflow bench FLOW``: Monte Carlo bias, scatter and coverage of a flow's outputs."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import typer
from svomflow.cli._common import SetOverrides, user_errors

__all__ = ["bench"]


def _fmt(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{nd}g}" if isinstance(x, float) else str(x)


def _binomial(k: int, n: int) -> tuple[float, float]:
    from svomflow.simulation.bench import _binomial_interval

    return _binomial_interval(k, n) if n > 0 else (math.nan, math.nan)


@user_errors
def bench(
    flow: Annotated[str, typer.Argument(help="Flow to bench (vhf, mxt).")],
    trials: Annotated[
        int, typer.Option("--trials", "-n", help="Number of Monte Carlo trials.")
    ] = 50,
    seed: Annotated[
        int, typer.Option("--seed", help="Bench seed (trial seeds are spawned from it).")
    ] = 0,
    scenario: Annotated[
        str | None,
        typer.Option(
            "--scenario",
            help="Scenario name or YAML file (svomflow simulate --list); default: short_grb "
            "for vhf, mxt_one_source for mxt.",
        ),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Worker processes.")] = 2,
    set_: SetOverrides = None,
    flow_set: Annotated[
        list[str] | None,
        typer.Option("--flow-set", help="Override of the flow configuration: dotted.key=value."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    keep_trials: Annotated[
        bool, typer.Option("--trials-detail", help="With --json, include every trial's numbers.")
    ] = False,
) -> None:
    """Simulate SCENARIO --trials times, run FLOW's steps on each (in parallel), compare with the truth.

    Per output quantity: bias (mean of estimate - truth, with its error), scatter, median
    errors and coverage (fraction of trials whose truth lies inside the reported error; 68 %
    nominal for 1-sigma errors, 90 % for position r90), plus failed trials with reasons.
    """
    from rich.console import Console
    from rich.table import Table
    from svomflow.errors import ConfigError
    from svomflow.simulation.bench import BENCH_FLOWS, BENCH_SCENARIOS, run_bench

    if flow not in BENCH_FLOWS:
        raise ConfigError(f"no bench for flow {flow!r}; available: {', '.join(BENCH_FLOWS)}")
    scenario = scenario or BENCH_SCENARIOS[flow]
    from svomflow.cli._progress import progress_bar

    with progress_bar(transient=as_json) as bar:
        tid = bar.add_task(f"bench {flow} on {scenario}", total=trials)
        failed = 0

        def step(r: dict[str, Any]) -> None:
            nonlocal failed
            failed += 0 if r["ok"] else 1
            bar.update(tid, advance=1, description=f"bench {flow} on {scenario} ({failed} failed)")

        rep = run_bench(
            flow,
            trials=trials,
            seed=seed,
            scenario=scenario,
            overrides=set_ or [],
            flow_overrides=flow_set or [],
            workers=workers,
            progress=step,
        )
    if not keep_trials:
        rep.pop("trial_results")
    if as_json:
        typer.echo(json.dumps(rep, separators=(",", ":"), default=str))
        return
    table = Table(
        title=f"{flow} on {scenario}: {rep['succeeded']}/{trials} trials, {rep['wall_s']:.0f} s"
    )
    for col in (
        "quantity",
        "unit",
        "n",
        "bias ± err",
        "scatter",
        "median |err|",
        "median reported",
        "coverage [95% CI]",
        "nominal",
    ):
        table.add_column(col)
    for name, q in rep["quantities"].items():
        table.add_row(
            name,
            q["unit"],
            str(q["n"]),
            f"{_fmt(q['bias'])} ± {_fmt(q['bias_err'], 2)}",
            _fmt(q["scatter"]),
            _fmt(q["median_abs_error"]),
            _fmt(q["median_reported_error"]),
            f"{q['coverage']:.2f} [{q['coverage_low']:.2f}, {q['coverage_high']:.2f}]"
            + ("" if q["consistent"] else " !"),
            f"{q['nominal_coverage']:.2f}",
        )
    import sys

    Console(width=None if sys.stdout.isatty() else 160).print(table)
    c = rep.get("counts") or {}
    if "injected" in c:
        n_ok = max(rep["succeeded"], 1)
        inj, det, false = c["injected"], c.get("detected", 0), c.get("false", 0)
        lo, hi = _binomial(det, inj)
        typer.echo(
            f"detection: {det}/{inj} injected sources found (completeness "
            f"{det / max(inj, 1):.3f} [{lo:.3f}, {hi:.3f}]), {false} false detections "
            f"({false / n_ok:.2f} per field)"
        )
        per = {k.removeprefix("detected_"): v for k, v in c.items() if k.startswith("detected_")}
        if per:
            typer.echo(
                "  per source: " + ", ".join(f"{k} {v}/{n_ok}" for k, v in sorted(per.items()))
            )
    for f in rep["failures"]:
        typer.echo(f"trial {f['trial']} (seed {f['seed']}) failed: {f['reason']}")
