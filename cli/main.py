"""Entry point of the ``svomflow`` command: registers each command group."""

from __future__ import annotations

import signal

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
    announce_cmd,
    bench_cmd,
    caldb_cmd,
    calib_cmd,
    config_cmd,
    demo_cmd,
    eic_cmd,
    followup_cmd,
    gp1_cmd,
    hk_cmd,
    mxt_cmd,
    ops_cmd,
    science_cmd,
    server_cmd,
    simulate_cmd,
    spectrum_cmd,
    vhf_cmd,
    warm_cmd,
    web_cmd,
    xband_cmd,
)

app.command("announce")(announce_cmd.announce)
app.command("bench")(bench_cmd.bench)
app.add_typer(caldb_cmd.app, name="caldb")
app.add_typer(calib_cmd.app, name="calib")
app.add_typer(config_cmd.app, name="config")
app.command("demo")(demo_cmd.demo)
app.add_typer(eic_cmd.app, name="eic")
app.command("followup")(followup_cmd.followup)
app.add_typer(gp1_cmd.app, name="gp1")
app.add_typer(hk_cmd.app, name="hk")
app.command("mxt", context_settings={"allow_extra_args": True})(mxt_cmd.mxt)
app.command("deploy")(ops_cmd.deploy)
app.command("listen")(ops_cmd.listen)
app.add_typer(ops_cmd.products_app, name="products")
app.command("reprocess")(ops_cmd.reprocess)
app.command("serve")(ops_cmd.serve)
app.add_typer(science_cmd.app, name="science")
app.command("serve-products")(server_cmd.serve_products)
app.add_typer(server_cmd.app, name="server")
app.command("status")(ops_cmd.status)
app.command("simulate")(simulate_cmd.simulate)
app.add_typer(spectrum_cmd.app, name="spectrum")
app.command("xband")(xband_cmd.xband)
app.command("vhf", context_settings={"allow_extra_args": True})(vhf_cmd.vhf)
app.command("warm")(warm_cmd.warm)
app.add_typer(web_cmd.app, name="web")


def _stop_on_signal(signum: int, _frame: object) -> None:
    """Stop the command on SIGINT/SIGTERM: unwind now, and exit for sure within 3 s.

    Unwinding (KeyboardInterrupt) lets a flow record its state; a worker thread busy in a
    compiled kernel would keep the process alive at exit, hence the hard stop.
    """
    import os
    import threading

    hard_stop = threading.Timer(3.0, os._exit, args=(128 + signum,))
    hard_stop.daemon = True
    hard_stop.start()
    signal.signal(signum, signal.SIG_DFL)  # a second signal stops at once
    raise KeyboardInterrupt


def _environment() -> None:
    """Give Prefect the svomflow home's settings (as the Makefile does) unless already set."""
    import os

    from svomflow.paths import data_home

    prefect_home = data_home() / "prefect"
    if "PREFECT_HOME" not in os.environ:
        prefect_home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(prefect_home)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def main() -> None:
    """Run the command line."""
    from svomflow import collector

    collector.adopt()  # first: its exit function must run after those registered later
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGINT, _stop_on_signal)
    _environment()
    app()


if __name__ == "__main__":
    main()
