"""``svomflow eic``: the ECLAIRs instrument centre (calibration, SAA, housekeeping, triggers).

Each part of the centre defines its own command group in its own module and is added here,
one line each.
"""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(
    help="ECLAIRs instrument centre: in-flight calibration, SAA contour, housekeeping "
    "monitoring and alarms, on-board trigger monitoring.",
    no_args_is_help=True,
)

# --- sub-groups (one line each; keep sorted) ---
from svomflow.cli import eic_calib_cmd  # noqa: E402

app.add_typer(eic_calib_cmd.app, name="calib")
from svomflow.cli import eic_pixels_cmd  # noqa: E402

app.add_typer(eic_pixels_cmd.app, name="pixels")
from svomflow.cli import eic_saa_cmd  # noqa: E402

app.add_typer(eic_saa_cmd.app, name="saa")
from svomflow.cli import eic_trig_cmd  # noqa: E402

app.add_typer(eic_trig_cmd.app, name="triggers")
