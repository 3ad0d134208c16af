"""``svomflow simulate``: run a simulation scenario and write L1 files plus ``truth.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
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
    """Simulate SCENARIO into --out: instrument L1 files and truth.json with every injected value.

    With ``--set instrument_options.alert_loop.run_chain=true`` (the ``e2e_alert_loop``
    scenario) it then runs the alert chain on the data (flows, NATS, GP1, science database;
    docs/alert_loop.md).
    """
    # rich's progress bar is imported here: every svomflow command imports this module
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
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
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    before = _files_under(out)
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(f"scenario {sc.name}", total=n_steps)

        def step(msg: str) -> None:
            bar.update(task, description=msg)
            bar.advance(task)

        truth = run_scenario(sc, out, seed, progress=step)
    written = sorted(_files_under(out) - before) or sorted(_files_under(out))
    _print_written(out, written)
    from svomflow.cli._common import where_lines

    typer.echo(f"calibration registered in {where_lines()[3].split(None, 1)[1]}")
    typer.echo(f"truth: {truth['truth_file']}")
    from svomflow.operations.alert_loop import run_scenario_chain, wants_chain

    if wants_chain(truth):  # the e2e bench: the simulated data through the real chain
        run_scenario_chain(out, truth, report=typer.echo)


def _files_under(root: Path) -> set[Path]:
    """Return every file below ``root`` (empty if it does not exist)."""
    return {p for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


def _print_written(root: Path, files: list[Path], per_folder: int = 6) -> None:
    """Print the files written, grouped by folder, at most ``per_folder`` names each."""
    groups: dict[Path, list[Path]] = {}
    for f in files:
        groups.setdefault(f.parent, []).append(f)
    typer.echo(f"{len(files)} files written under {root}:")
    for folder, names in groups.items():
        shown = ", ".join(n.name for n in names[:per_folder])
        more = f", ... ({len(names) - per_folder} more)" if len(names) > per_folder else ""
        typer.echo(f"  {folder}/ ({len(names)}): {shown}{more}")
