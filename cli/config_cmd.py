"""``svomflow config``: show merged configurations and instrument definitions."""

from __future__ import annotations

from typing import Annotated

import typer
from svomflow.cli._common import ConfigFiles, SetOverrides, user_errors

# the configuration package (pydantic) and yaml are imported by the commands: every svomflow
# command imports this module to register them
app = typer.Typer(help="Show configurations and instrument definitions.", no_args_is_help=True)


@app.command("show")
@user_errors
def show(
    flow: Annotated[str, typer.Argument(help="Flow name (e.g. vhf or vhf_quick_analysis).")],
    config: ConfigFiles = None,
    set_: SetOverrides = None,
) -> None:
    """Print the merged configuration of FLOW (defaults, packaged, instrument, files, --set)."""
    import yaml
    from svomflow.config.loader import load_config
    from svomflow.config.registry import canonical_flow_name, config_model_for

    name = canonical_flow_name(flow)
    model = config_model_for(name)
    instruments = list(getattr(model, "instruments_for_defaults", ()))
    cfg = load_config(
        model, flow=name, instruments=instruments, files=config or [], overrides=set_ or []
    )
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


@app.command("flows")
def flows() -> None:
    """List the flows that have a configuration."""
    from svomflow.config.registry import FLOW_CONFIGS

    for name in sorted(FLOW_CONFIGS):
        typer.echo(name)


@app.command("instrument")
@user_errors
def instrument(
    name: Annotated[str | None, typer.Argument(help="Instrument name; omit to list them.")] = None,
) -> None:
    """Print an instrument definition (assumptions included), or list the instruments."""
    import yaml
    from svomflow.config.instrument import available_instruments, load_instrument

    if name is None:
        for n in available_instruments():
            typer.echo(n)
        return
    typer.echo(yaml.safe_dump(load_instrument(name).model_dump(mode="json"), sort_keys=False))
