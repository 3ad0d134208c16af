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
    """Svomflow command line."""


# Command groups: each module defines `app` (a typer.Typer) or registers commands on ours.
# --- command groups (one line each; keep sorted) ---
from svomflow.cli import (
    bench_cmd,
    caldb_cmd,
    calib_cmd,
    config_cmd,
    demo_cmd,
    gp1_cmd,
    mxt_cmd,
    ops_cmd,
    server_cmd,
    simulate_cmd,
    spectrum_cmd,
    vhf_cmd,
    xband_cmd,
)

app.command("bench")(bench_cmd.bench)
app.add_typer(caldb_cmd.app, name="caldb")
app.add_typer(calib_cmd.app, name="calib")
app.add_typer(config_cmd.app, name="config")
app.command("demo")(demo_cmd.demo)
app.add_typer(gp1_cmd.app, name="gp1")
app.command("mxt", context_settings={"allow_extra_args": True})(mxt_cmd.mxt)
app.command("deploy")(ops_cmd.deploy)
app.command("listen")(ops_cmd.listen)
app.add_typer(ops_cmd.products_app, name="products")
app.command("reprocess")(ops_cmd.reprocess)
app.command("serve")(ops_cmd.serve)
app.add_typer(server_cmd.app, name="server")
app.command("status")(ops_cmd.status)
app.command("simulate")(simulate_cmd.simulate)
app.add_typer(spectrum_cmd.app, name="spectrum")
app.command("xband")(xband_cmd.xband)
app.command("vhf", context_settings={"allow_extra_args": True})(vhf_cmd.vhf)


def main() -> None:
    """Run the command line."""
    app()


if __name__ == "__main__":
    main()
