"""Entry point of the ``svomflow`` command: registers each command group."""

from __future__ import annotations

import typer
from svomflow import __version__

app = typer.Typer(
    name="svomflow",
    help="Science ground segment for a SVOM-like GRB mission: pipelines as Prefect flows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"svomflow {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """svomflow command line."""


# Command groups: each module defines `app` (a typer.Typer) or registers commands on ours.
# --- command groups (one line each; keep sorted) ---
from svomflow.cli import caldb_cmd  # noqa: E402
from svomflow.cli import config_cmd  # noqa: E402
from svomflow.cli import gp1_cmd  # noqa: E402
from svomflow.cli import simulate_cmd  # noqa: E402
from svomflow.cli import spectrum_cmd  # noqa: E402

app.add_typer(caldb_cmd.app, name="caldb")
app.add_typer(config_cmd.app, name="config")
app.add_typer(gp1_cmd.app, name="gp1")
app.command("simulate")(simulate_cmd.simulate)
app.add_typer(spectrum_cmd.app, name="spectrum")


def main() -> None:
    """Run the command line."""
    app()


if __name__ == "__main__":
    main()
