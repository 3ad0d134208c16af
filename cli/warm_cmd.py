"""``svomflow warm``: compile the numba kernels of the VHF flow into the kernel cache.

A fresh process otherwise compiles every kernel it calls (about 5 s of CPU for the VHF
flow) before doing any work. Warming runs the VHF pipeline once, without Prefect, on a
short simulated burst in a temporary folder: every kernel the flow calls is compiled with
the argument types it meets in production and written to the cache of the current home
(:func:`svomflow.numba_policy.cache_dir`), and the arrays the steps derive from
calibration go to the array cache beside it (:mod:`svomflow.array_cache`). Nothing else is
left behind: the simulated files, their calibration (a temporary CALDB), the products and
their database are all temporary.

``--stamp FILE`` writes the source files the warmed caches were built from (the modules
of the kernels compiled, those the array cache's versions digest, the two cache modules)
into FILE, one per line: ``make warm`` reads them as the stamp's prerequisites, so that it
warms again when one of them changes.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from svomflow.cli._common import user_errors

__all__ = ["warm", "warm_kernels", "warmed_sources"]

# a bright burst keeps every branch of the flow busy (imaging, the Bayesian-blocks fast
# path above 3e4 events, the spectral fit); 60 s of data keep the simulation short
SCENARIO = "bright_long_grb"
OVERRIDES = ["time.start_s=-20", "time.stop_s=40"]


def warm_kernels(seed: int = 1) -> tuple[Path | None, float]:
    """Run the VHF pipeline once on a simulated burst; return the cache folder and seconds.

    The environment is restored afterwards (``SVOMFLOW_HOME``, ``SVOMFLOW_CALDB``).
    """
    from svomflow.numba_policy import cache_dir

    cache = cache_dir()  # pinned to the real home before the home is redirected below
    t0 = time.perf_counter()
    saved = {k: os.environ.get(k) for k in ("SVOMFLOW_HOME", "SVOMFLOW_CALDB")}
    with tempfile.TemporaryDirectory(prefix="svomflow_warm_") as tmp:
        root = Path(tmp)
        os.environ["SVOMFLOW_HOME"] = str(root / "home")
        os.environ["SVOMFLOW_CALDB"] = str(root / "caldb")
        try:
            from svomflow.flows.vhf_plain import run_vhf_plain
            from svomflow.simulation.scenario import load_scenario, run_scenario

            truth = run_scenario(load_scenario(SCENARIO, OVERRIDES), root / "sim", seed)
            files = [
                str(root / "sim" / v["files"]["events"]) for v in truth["instruments"].values()
            ]
            run_vhf_plain(
                files,
                "warm",
                out_dir=str(root / "out"),
                database_url=f"sqlite:///{root / 'products.db'}",
            )
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return cache, time.perf_counter() - t0


def warmed_sources() -> list[Path]:
    """Return the source files of what this process cached: compiled kernels and cached arrays.

    The modules of svomflow that hold a kernel compiled (or loaded) in this process, the
    modules whose source versions the array cache's files (:func:`svomflow.array_cache.
    digested_sources`, the array cache's own module included) and the numba policy.
    """
    from numba.core.dispatcher import Dispatcher
    from svomflow import numba_policy
    from svomflow.array_cache import digested_sources

    files = {*digested_sources(), Path(numba_policy.__file__).resolve()}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not name.startswith("svomflow.") or path is None:
            continue
        if any(
            isinstance(v, Dispatcher) and v.signatures and v.py_func.__module__ == name
            for v in list(vars(module).values())
        ):
            files.add(Path(path).resolve())
    return sorted(files)


@user_errors
def warm(
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulated burst.")] = 1,
    stamp: Annotated[
        Path | None,
        typer.Option(
            "--stamp",
            help="Write the source files the warmed caches depend on to this file (make warm).",
        ),
    ] = None,
) -> None:
    """Compile the VHF flow's numba kernels into the kernel cache (make warm/venv/demo run it).

    The cache is the current home's ($SVOMFLOW_HOME/numba_cache, or NUMBA_CACHE_DIR): run it
    once per home, after installing or upgrading, so that a fresh svomflow vhf process loads
    its kernels instead of compiling them (about 5 s of CPU).
    """
    from svomflow.numba_policy import cache_enabled

    if not cache_enabled():
        typer.echo("kernel cache disabled (SVOMFLOW_NUMBA_CACHE=0): nothing to warm", err=True)
        raise typer.Exit(1)
    typer.echo("warming the kernel cache: simulating a burst and running the VHF steps ...")
    cache, seconds = warm_kernels(seed)
    n = len(list(cache.rglob("*.nbi"))) if cache is not None else 0
    typer.echo(f"kernel cache {cache}: {n} kernel indexes, warmed in {seconds:.1f} s")
    if stamp is not None:
        from svomflow.atomic import atomic_write_bytes

        sources = warmed_sources()
        atomic_write_bytes(stamp, "".join(f"{p}\n" for p in sources).encode())
        typer.echo(f"{stamp}: the {len(sources)} source files the warmed caches depend on")
