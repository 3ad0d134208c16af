"""The ``svomflow`` command line (typer)."""
