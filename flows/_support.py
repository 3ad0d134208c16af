"""What every flow shares: the product store, processing status, failure hook and summary.

Flows stay thin: they build a :class:`FlowContext` in their first task, publish products
through it, and end with :func:`publish_summary`. A failed flow run records its reason in
the products database through :func:`record_failure` (an ``on_failure`` hook).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svomflow.products.store import ProductRef, ProductStore

__all__ = [
    "FlowContext",
    "default_output_root",
    "products_table_markdown",
    "publish_summary",
    "record_failure",
    "run_key",
    "task_runner_for",
    "transient_error",
]


def default_output_root() -> Path:
    """Return ``$SVOMFLOW_PRODUCTS`` or ``$SVOMFLOW_HOME/products``."""
    from svomflow.paths import data_home

    env = os.environ.get("SVOMFLOW_PRODUCTS")
    return Path(env) if env else data_home() / "products"


@dataclass(frozen=True)
class FlowContext:
    """Where a flow run writes and records: output root, database and processing key."""

    flow_name: str
    key: str
    out_root: str
    database_url: str | None = None

    def store(self) -> ProductStore:
        """Return a product store for this run (cheap: engines are cached per URL)."""
        return ProductStore(self.out_root, self.database_url)

    def status(self, state: str, reason: str | None = None) -> None:
        """Record the processing state of this run's key."""
        from svomflow.products.provenance import current_flow_run_id

        self.store().set_status(
            self.key, self.flow_name, state, reason=reason, flow_run_id=current_flow_run_id()
        )


def record_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_failure`` hook: store 'failed' with the reason for the run's key.

    The key is the run's ``obs_id`` (or ``night``, ``burst_id``), else the name of its first
    input file (``images``/``events``); ``out_dir``/``output_dir`` and ``database_url`` are
    honoured; the reason is the state's message.
    """
    params = dict(getattr(flow_run, "parameters", {}) or {})
    key = run_key(params)
    if not key:
        return
    out_root = params.get("out_dir") or params.get("output_dir") or str(default_output_root())
    reason = (getattr(state, "message", None) or "failed")[:2000]
    ctx = FlowContext(flow.name, str(key), str(out_root), params.get("database_url"))
    try:
        ctx.status("failed", reason)
    except Exception as exc:
        import logging

        logging.getLogger("svomflow.flows").error("could not record failure of %s: %s", key, exc)


def run_key(params: Mapping[str, Any]) -> str | None:
    """Return what a flow run processes, from its parameters (used for status and names)."""
    for name in ("obs_id", "night", "burst_id"):
        if params.get(name):
            return str(params[name])
    for name in ("images", "events", "l1_files"):
        files = params.get(name)
        if files:
            first = files[0] if isinstance(files, list | tuple) else files
            return Path(str(first)).name
    return None


def products_table_markdown(refs: Sequence[ProductRef]) -> str:
    """Return a markdown table of products with file links."""
    lines = ["| product | instrument | version | file |", "|---|---|---|---|"]
    for r in refs:
        lines.append(
            f"| {r.type_code} | {r.instrument} | v{r.version} | [{Path(r.path).name}](file://{r.path}) |"
        )
    return "\n".join(lines)


def publish_summary(
    *,
    title: str,
    key: str,
    refs: Sequence[ProductRef],
    numbers: Mapping[str, Any] | None = None,
    previews: Sequence[str] = (),
    artifact_key: str | None = None,
) -> str:
    """Attach a markdown summary artifact (key numbers, product table, previews) to the run.

    Returns the markdown text (also useful outside Prefect). Preview PNGs are linked by
    ``file://`` URL: Prefect image artifacts take URLs, not bytes.
    """
    parts = [f"# {title}", ""]
    if numbers:
        parts += ["| quantity | value |", "|---|---|"]
        parts += [f"| {k} | {v} |" for k, v in numbers.items()]
        parts.append("")
    parts += ["## Products", "", products_table_markdown(refs), ""]
    for p in previews:
        parts.append(f"![{Path(p).name}](file://{p})")
    text = "\n".join(parts)
    try:
        from prefect.artifacts import create_markdown_artifact
        from prefect.context import FlowRunContext

        if FlowRunContext.get() is not None:
            safe_key = (artifact_key or f"{title}-{key}").lower()
            safe_key = "".join(c if c.isalnum() or c == "-" else "-" for c in safe_key)[:100]
            create_markdown_artifact(markdown=text, key=safe_key, description=title)
    except ImportError:
        pass
    return text


def task_runner_for(address: str | None = None, *, max_workers: int | None = None) -> Any:
    """Return the task runner for a flow's fan-out: threads, or Dask when one is configured.

    Parameters
    ----------
    address
        ``None`` reads ``$SVOMFLOW_DASK_ADDRESS``; empty means the default thread pool;
        ``"local"`` starts a Dask ``LocalCluster`` per flow run (2 workers, no dashboard);
        anything else is the address of a running Dask scheduler (``tcp://host:8786``).
    max_workers
        Threads of the thread runner (default ``min(8, cpu count)``: Prefect's default pool
        is unbounded).

    Notes
    -----
    Dask submission costs ~65 ms per task here (ARCHITECTURE.md §10), so it pays only for
    coarse tasks (seconds each): per-group masters, per-image reductions, Monte Carlo batches.
    """
    from prefect.task_runners import ThreadPoolTaskRunner

    if address is None:
        address = os.environ.get("SVOMFLOW_DASK_ADDRESS", "")
    address = address.strip()
    if not address:
        return ThreadPoolTaskRunner(max_workers=max_workers or min(8, os.cpu_count() or 1))
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        from svomflow.errors import ConfigError

        raise ConfigError(
            f"a Dask address is set ({address!r}) but prefect-dask is not installed: "
            "pip install 'svomflow[dask]'"
        ) from exc
    if address == "local":
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": 2,
                "threads_per_worker": 1,
                "processes": False,
                "dashboard_address": None,
            }
        )
    return DaskTaskRunner(address=address)


def transient_error(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry I/O and database errors, never user errors.

    A bad header value or a missing calibration (:class:`~svomflow.errors.SvomflowError`)
    fails the same way on every try; a locked database, a network file system hiccup or a
    dropped database connection may not.
    """
    from sqlalchemy.exc import OperationalError
    from svomflow.errors import SvomflowError

    try:
        state.result()
    except SvomflowError:
        return False
    except (OSError, OperationalError, TimeoutError):
        return True
    except Exception:
        return False
    return False
