"""GP1 pipeline order and module switches, shared by the Prefect flow, the CLI and the watcher.

:func:`image_steps` lists the per-image modules that apply to an image state (reduction for
every image; for alert images extraction, astrometry, photometry and subtraction, each only
if switched on and if what it needs ran). :func:`process_image` runs them in plain Python;
the flow :func:`svomflow.flows.gp1.gp1_reduction` runs the same functions as Prefect tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from svomflow.errors import ConfigError
from svomflow.tasks.gp1 import analysis
from svomflow.tasks.gp1.config import GP1Config

__all__ = ["IMAGE_STEPS", "image_steps", "process_image", "process_images", "step_function"]

#: Per-image modules in order, with the modules each needs before it.
IMAGE_STEPS: dict[str, tuple[str, ...]] = {
    "findstars": ("reduction",),
    "astrometry": ("findstars",),
    "photometry": ("astrometry",),
    "subtraction": ("photometry",),
}


def step_function(name: str) -> Callable[[dict[str, Any], GP1Config], dict[str, Any]]:
    """Return the state-to-state function of a per-image module."""
    table = {
        "findstars": analysis.run_findstars,
        "astrometry": analysis.run_astrometry,
        "photometry": analysis.run_photometry,
        "subtraction": analysis.run_subtraction,
    }
    if name not in table:
        raise ConfigError(f"unknown per-image module {name!r}; one of {', '.join(table)}")
    return table[name]


def image_steps(state: dict[str, Any], cfg: GP1Config) -> list[str]:
    """Return the modules still to run on an image, honouring switches and dependencies."""
    if not state.get("alert"):
        return []
    done = set(state.get("done", []))
    todo = []
    for name, needs in IMAGE_STEPS.items():
        if not getattr(cfg.steps, name).enabled:
            continue
        if name in done:
            continue
        if all(n in done or n in todo for n in needs):
            todo.append(name)
    return todo


def process_image(raw_path: str | Path, cfg: GP1Config) -> dict[str, Any]:
    """Run every applicable per-image module on one raw image; return its final state."""
    state = analysis.run_reduction(raw_path, cfg)
    for name in image_steps(state, cfg):
        state = step_function(name)(state, cfg)
    return state


def process_images(
    paths: list[str | Path], cfg: GP1Config, *, products: bool = True
) -> dict[str, Any]:
    """Process images one by one, then build the sequence products of each work directory.

    A bad image is reported and skipped (the others go on).
    """
    from svomflow.errors import SvomflowError
    from svomflow.tasks.gp1.sequence import build_products

    done: dict[str, Any] = {}
    failed: dict[str, str] = {}
    work_dirs: set[str] = set()
    for p in paths:
        try:
            st = process_image(p, cfg)
        except SvomflowError as exc:
            failed[str(p)] = str(exc)
            continue
        done[str(p)] = st
        if st.get("alert") and "subtraction" in st.get("done", []):
            work_dirs.add(st["work_dir"])
    sequences = {}
    if products and cfg.steps.summary.enabled:
        for w in sorted(work_dirs):
            try:
                sequences[w] = build_products(w, cfg)
            except SvomflowError as exc:
                failed[w] = str(exc)
    return {"images": done, "failed": failed, "sequences": sequences}
