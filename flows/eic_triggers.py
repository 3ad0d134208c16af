"""Prefect flow ``eic_triggers``: compare the on-board triggers with a ground re-analysis.

For each day (a rate stream ``<name>_stream.fits`` and its on-board trigger log
``<name>_triglog.fits``), the pipeline :data:`~svomflow.tasks.eic.trigger_pipeline.TRIGGER_PIPELINE`
selects the threshold table (``TRIGTHR``) and known-source catalogue (``OBSRCCAT``) that
were on board when the stream starts from the CALDB in its first task, re-runs the rate
trigger on the stream with those thresholds and publishes the comparison (``TRIGCMP``:
matched, missed, spurious and known-source triggers, with its plot).

Given no files, the flow processes every pair in the inbox folder
(``$SVOMFLOW_HOME/eic/triggers`` by default) whose key ``trig-<name>`` is not done yet, so
a daily schedule picks up each new day once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from svomflow.config import load_config
from svomflow.errors import InputDataError, SvomflowError
from svomflow.flows._params import config_overrides
from svomflow.flows.adapter import (
    FlowContext,
    default_output_root,
    publish_summary,
    record_failure,
    run_pipeline,
)
from svomflow.flows.prefect_flow import flow
from svomflow.paths import data_home, safe_component
from svomflow.products.store import ProductStore
from svomflow.tasks.eic.trigger_pipeline import (
    FLOW_NAME,
    TRIGGER_PIPELINE,
    EicTriggersConfig,
    TriggerRequest,
)

__all__ = ["default_inbox", "eic_triggers", "pending_days", "trigger_key"]

STREAM_SUFFIX = "_stream.fits"
LOG_SUFFIX = "_triglog.fits"


def default_inbox() -> Path:
    """Return the folder of streams and logs looked in by default (``$SVOMFLOW_HOME/eic/triggers``)."""
    return data_home() / "eic" / "triggers"


def trigger_key(stream_file: str | Path) -> str:
    """Return the run key of a stream: ``trig-<name>`` (``day1_stream.fits`` gives ``trig-day1``)."""
    name = Path(stream_file).name
    stem = name[: -len(STREAM_SUFFIX)] if name.endswith(STREAM_SUFFIX) else Path(name).stem
    return "trig-" + safe_component(stem, what="stream name")


def pending_days(inbox: str | Path, store: ProductStore) -> list[tuple[str, str]]:
    """Return the (stream, log) pairs of a folder whose key has no ``done`` status yet."""
    out = []
    for stream in sorted(Path(inbox).glob("*" + STREAM_SUFFIX)):
        log = stream.with_name(stream.name[: -len(STREAM_SUFFIX)] + LOG_SUFFIX)
        if not log.is_file():
            continue
        states = store.statuses(trigger_key(stream))
        if any(s.state == "done" and s.flow_name == FLOW_NAME for s in states):
            continue
        out.append((str(stream), str(log)))
    return out


def _run_name() -> str:
    """Name a run after its stream (``trig-day1``), or ``trig-inbox``."""
    from prefect.runtime import flow_run

    stream = dict(flow_run.parameters).get("stream_file")
    try:
        return trigger_key(stream) if stream else "trig-inbox"
    except SvomflowError:
        return "trig-run"  # the flow itself reports the bad name


@flow(
    name="eic_triggers",
    flow_run_name=_run_name,
    on_failure=[record_failure],
    on_crashed=[record_failure],
)
def eic_triggers(
    stream_file: str | None = None,
    log_file: str | None = None,
    inbox: str | None = None,
    out_dir: str | None = None,
    caldb_root: str | None = None,
    config: EicTriggersConfig | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Re-run the rate trigger on the on-board stream and compare with the on-board log.

    Parameters
    ----------
    stream_file, log_file
        One day's rate stream and on-board trigger log (both or neither).
    inbox
        Folder of ``<name>_stream.fits`` / ``<name>_triglog.fits`` pairs processed when no
        file is given (default ``$SVOMFLOW_HOME/eic/triggers``); days already done are skipped.
    out_dir
        Products root (default ``$SVOMFLOW_PRODUCTS`` or ``$SVOMFLOW_HOME/products``).
    caldb_root
        CALDB location (default ``$SVOMFLOW_CALDB`` or the home's).
    config
        The configuration (:class:`~svomflow.tasks.eic.trigger_pipeline.EicTriggersConfig`);
        only the values set count, over ``config/pipelines/eic_triggers.yaml``.
    database_url
        Products database (default SQLite under the data directory).

    Returns
    -------
    dict
        ``status`` (``empty`` or ``done``) and per day: the key, the counts per status, the
        missed ground-trigger times, the spurious on-board ids and the product paths.
    """
    cfg = load_config(EicTriggersConfig, flow=FLOW_NAME, overrides=config_overrides(config))
    out_root = str(out_dir or default_output_root())
    if (stream_file is None) != (log_file is None):
        raise InputDataError("give both the stream file and the trigger-log file, or neither")
    if stream_file is not None and log_file is not None:
        pairs = [(stream_file, log_file)]
    else:
        pairs = pending_days(inbox or default_inbox(), ProductStore(out_root, database_url))
    if not pairs:
        return {"status": "empty", "message": "no new day to compare", "days": []}
    days = []
    for stream, log in pairs:
        key = trigger_key(stream)
        ctx = FlowContext(FLOW_NAME, key, out_root, database_url)
        run = run_pipeline(
            TRIGGER_PIPELINE,
            TriggerRequest(stream, log),
            cfg,
            ctx,
            inputs=[stream, log],
            caldb_root=caldb_root,
        )
        cmp = run.outcome
        counts = {s: len(cmp.of(s)) for s in ("MATCHED", "MISSED", "SPURIOUS", "KNOWN")}
        ctx.status("done", ", ".join(f"{v} {k.lower()}" for k, v in counts.items()))
        publish_summary(
            title=f"On-board triggers {key}",
            key=key,
            refs=run.refs,
            numbers={
                **{k.lower(): v for k, v in counts.items()},
                "threshold table": cmp.thresholds_label,
                "catalogue": cmp.catalogue_label,
            },
            previews=[r.path for r in run.refs if r.type_code.endswith("-PREVIEW")],
            artifact_key=key,
        )
        days.append(
            {
                "key": key,
                "stream": stream,
                "log": log,
                "counts": counts,
                "missed": [r.time for r in cmp.of("MISSED")],
                "spurious": [r.onboard_id for r in cmp.of("SPURIOUS")],
                "thresholds": cmp.thresholds_label,
                "catalogue": cmp.catalogue_label,
                "products": [r.path for r in run.refs],
            }
        )
    return {"status": "done", "days": days}
