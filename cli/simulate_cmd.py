"""``svomflow simulate``: run a simulation scenario and write L1 files plus ``truth.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from svomflow.cli._common import SetOverrides, user_errors

__all__ = ["simulate"]


@user_errors
def simulate(
    scenario: Annotated[
        str | None, typer.Argument(help="Scenario name (see --list) or a scenario YAML file.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("sim_out"),
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same files).")] = 0,
    set_: SetOverrides = None,
    list_: Annotated[bool, typer.Option("--list", help="List the packaged scenarios.")] = False,
) -> None:
    """Simulate SCENARIO into --out: instrument L1 files and truth.json with every injected value."""
    from svomflow.errors import ConfigError
    from svomflow.simulation.scenario import available_scenarios, load_scenario, run_scenario

    if list_:
        for name in available_scenarios():
            typer.echo(name)
        return
    if scenario is None:
        raise ConfigError("give a SCENARIO (see svomflow simulate --list)")
    if seed < 0:
        raise ConfigError("--seed must be a non-negative integer")
    sc = load_scenario(scenario, set_ or [])
    n_steps = len(sc.grbs) + len(sc.instruments)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True
    ) as bar:
        task = bar.add_task(f"scenario {sc.name}", total=n_steps)

        def step(msg: str) -> None:
            bar.update(task, description=msg)
            bar.advance(task)

        truth = run_scenario(sc, out, seed, progress=step)
    for name, info in truth["instruments"].items():
        files = info.get("files", {}) if isinstance(info, dict) else {}
        typer.echo(f"{name}: {files}")
    typer.echo(f"truth: {truth['truth_file']}")
