"""Prefect flow ``gp1_reduction``: reduce images and, for alerts, analyse them to products.

Coarse tasks (ARCHITECTURE.md §10): one task per image and module (reduction, findstars,
astrometry, photometry, subtraction), then one task per work directory (trigger, camera,
filter) that stacks the sequence and publishes DT/QLC/PO/LC/QTI/QF and the HTML summary.
Tasks pass the image state (a small dict of paths and figures), never arrays. A bad image
fails its own tasks and is reported; the others go on. Retries only on the product step
(database, file system).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from svomflow.config import deep_merge
from svomflow.errors import SvomflowError
from svomflow.flows._params import config_overrides
from svomflow.flows.adapter import record_failure
from svomflow.tasks.gp1.analysis import run_reduction
from svomflow.tasks.gp1.config import GP1Config, load_gp1_config
from svomflow.tasks.gp1.pipeline import image_steps, step_function
from svomflow.tasks.gp1.sequence import build_products

__all__ = ["gp1_reduction"]


@task(name="gp1-reduction", task_run_name="reduction-{name}")
def _reduction(raw: str, cfg: GP1Config, name: str) -> dict[str, Any]:
    return run_reduction(raw, cfg)


@task(name="gp1-image-module", task_run_name="{module}-{name}")
def _module(module: str, state: dict[str, Any], cfg: GP1Config, name: str) -> dict[str, Any]:
    return step_function(module)(state, cfg)


@task(name="gp1-sequence-products", retries=2, retry_delay_seconds=2)
def _products(work_dir: str, cfg: GP1Config, database_url: str | None) -> dict[str, Any]:
    summary = build_products(work_dir, cfg, database_url=database_url)
    # Keep the flow result small: the light curve rows stay in the products.
    return {k: v for k, v in summary.items() if k != "light_curve"}


def resolve_config(
    config: GP1Config | Mapping[str, Any] | None,
    config_file: str | None,
    output_dir: str | None,
) -> GP1Config:
    """Return the run's configuration: packaged defaults < ``config_file`` < ``config`` < ``output_dir``.

    Only the values the caller set on ``config`` are layered over the file
    (:func:`~svomflow.flows._params.config_overrides`): a ``GP1Config`` carries every
    default, and merging it whole would clobber the file.
    """
    cfg = load_gp1_config(config_file)
    overrides = config_overrides(config)
    if overrides:
        cfg = GP1Config.model_validate(deep_merge(cfg.model_dump(mode="json"), overrides))
    return cfg.model_copy(update={"output_dir": str(output_dir)}) if output_dir else cfg


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    images = params.get("images") or []
    first = Path(images[0]).stem if images else "none"
    return f"gp1-{first}" + (f"-n{len(images)}" if len(images) > 1 else "")


@flow(
    name="gp1_reduction",
    flow_run_name=_run_name,
    on_failure=[record_failure],
    on_crashed=[record_failure],
)
def gp1_reduction(
    images: list[str],
    config: GP1Config | None = None,
    config_file: str | None = None,
    output_dir: str | None = None,
    database_url: str | None = None,
    products: bool = True,
) -> dict[str, Any]:
    """Reduce ``images`` one by one; analyse alert images and publish the sequence products.

    Parameters
    ----------
    images
        Raw image paths (processed in the given order).
    config
        Configuration values (:class:`~svomflow.tasks.gp1.config.GP1Config`) applied over
        the packaged defaults and ``config_file``. Only the values set on it are applied
        (a plain nested mapping, validated into the model, sets exactly its keys; what the
        CLI, the watcher and ``svomflow reprocess`` pass); unset ones keep the file's.
        Typed, so the Prefect UI renders it as a form.
    config_file
        A GP1 pipeline YAML file (``gp1 run --config``).
    output_dir
        Output root (overrides the configuration's).
    database_url
        Products database (default: SQLite under the svomflow data directory).
    products
        Build the sequence products after the images (the watcher sets this per image).

    Returns
    -------
    dict
        ``images`` (path -> final state summary), ``failed`` (path -> reason) and
        ``sequences`` (work directory -> product references).
    """
    log = get_run_logger()
    cfg = resolve_config(config, config_file, output_dir)
    done: dict[str, Any] = {}
    failed: dict[str, str] = {}
    work_dirs: list[str] = []
    for raw in images:
        name = Path(raw).name
        try:
            state = _reduction(raw, cfg, name)
            for module in image_steps(state, cfg):
                state = _module(module, state, cfg, name)
        except SvomflowError as exc:
            log.error("%s: %s", name, exc)
            failed[raw] = str(exc)
            continue
        done[raw] = {
            k: state.get(k)
            for k in (
                "work_dir",
                "done",
                "zp",
                "maglim",
                "fwhm",
                "astrometry_rms_arcsec",
                "n_candidates",
            )
        }
        if (
            state.get("alert")
            and "subtraction" in state["done"]
            and state["work_dir"] not in work_dirs
        ):
            work_dirs.append(state["work_dir"])
    sequences: dict[str, Any] = {}
    if products and cfg.steps.summary.enabled:
        for w in work_dirs:
            try:
                sequences[w] = _products(w, cfg, database_url)
            except SvomflowError as exc:
                log.error("%s: %s", w, exc)
                failed[w] = str(exc)
    log.info(
        "gp1: %d images processed, %d failed, %d sequences", len(done), len(failed), len(sequences)
    )
    return {"images": done, "failed": failed, "sequences": sequences}
