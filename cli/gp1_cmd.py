"""``svomflow gp1``: the GP1 image pipeline at three levels (watch, run, module).

* ``gp1 watch --config gp1_watch.yaml``: the online watcher with its pipeline instances.
* ``gp1 run --config DIR|FILE``: one pipeline over a set of images, offline.
* ``gp1 module NAME --input DIR|FILES --output DIR [--config FILE]``: one module.

Paths given on the command line override the configuration files' paths.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from svomflow.cli._common import SetOverrides, user_errors, user_errors_printed_once
from svomflow.errors import ConfigError, InputDataError, ServerUnavailableError

app = typer.Typer(
    help="GP1: reduce and analyse robotic-telescope images (COLIBRI).", no_args_is_help=True
)

_PATTERNS = ("*.fits", "*.fit", "*.fts", "*.fits.fz", "*.fits.gz")

CaldbOption = Annotated[
    str | None,
    typer.Option(
        "--caldb", help="CALDB directory or URL of the masters (default $SVOMFLOW_CALDB)."
    ),
]


# Where a simulated night (``svomflow simulate colibri_night -o DIR``) keeps its raw frames.
_RAW_SUBDIRS = ("raw", "colibri/raw")


def _images(inputs: list[str], patterns: tuple[str, ...] = _PATTERNS) -> list[Path]:
    """Return the image files given: files, or the images of directories.

    A directory without images of its own but with a ``raw`` or ``colibri/raw``
    subdirectory (a simulated night) gives that subdirectory's images.
    """
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = _dir_images(p, patterns)
            for sub in _RAW_SUBDIRS if not found else ():
                if (p / sub).is_dir():
                    found = _dir_images(p / sub, patterns)
                    break
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise InputDataError(f"input {p} does not exist")
    return out


def _dir_images(p: Path, patterns: tuple[str, ...]) -> list[Path]:
    return sorted(q for q in p.iterdir() if any(fnmatch.fnmatch(q.name, pt) for pt in patterns))


def _print_result(result: dict[str, Any]) -> None:
    from rich.console import Console

    con = Console()
    con.print(
        f"images processed: {len(result['images'])}, failed: {len(result['failed'])}, "
        f"skipped: {len(result.get('skipped', {}))}"
    )
    for path, reason in result["failed"].items():
        con.print(f"  [red]failed[/red] {Path(path).name}: {reason}")
    _print_sequences(con, result)


def _print_sequences(con: Any, result: dict[str, Any]) -> None:
    for w, seq in result["sequences"].items():
        tr = seq.get("transient")
        where = (
            f"RA {tr['ALPHA_J2000']:.6f} Dec {tr['DELTA_J2000']:+.6f} S/N {tr['SNR']:.1f}"
            if tr
            else "no transient"
        )
        con.print(f"  {w}: {where}")
        for code, ref in seq.get("products", {}).items():
            con.print(f"    {code}: {ref['path']}")


def _status_rows(images: list[Path], result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Return (image, status, detail) rows: inputs, failed sequences, skipped frames' count."""
    done = {str(Path(k).resolve()): v for k, v in result["images"].items()}
    failed = {
        str(Path(k).resolve()) if Path(k).exists() else k: v for k, v in result["failed"].items()
    }
    skipped = {str(Path(k).resolve()): v for k, v in result.get("skipped", {}).items()}
    rows: list[tuple[str, str, str]] = []
    kinds: dict[str, int] = {}
    for p in images:
        key = str(p.resolve())
        if key in failed:
            rows.append((p.name, "failed", failed.pop(key)))
        elif key in skipped:
            kind = skipped[key].split(" ", 1)[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        elif key in done:
            img = done[key]
            detail = f"{img['sequence']}: {', '.join(img['done'])}"
            rows.append((p.name, "done", "; warning: ".join([detail, *img.get("warnings", [])])))
        else:
            rows.append((p.name, "failed", "no result (the run stopped before this image)"))
    rows += [(name, "failed", reason) for name, reason in failed.items()]  # sequences
    if kinds:  # calibration frames: one line with the count of each kind
        what = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        rows.append((f"{sum(kinds.values())} calibration frames", "skipped", what))
    return rows


def _print_table(images: list[Path], result: dict[str, Any]) -> int:
    """Print what succeeded, failed and was skipped, with reasons; return the failures."""
    from rich.console import Console
    from rich.table import Table

    rows = _status_rows(images, result)
    table = Table(title="GP1 run", show_lines=False)
    table.add_column("image / sequence")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    colour = {"done": "green", "failed": "red", "skipped": "yellow"}
    for name, status, detail in rows:
        table.add_row(name, f"[{colour[status]}]{status}[/{colour[status]}]", detail)
    con = Console()
    con.print(table)
    n_done = sum(1 for r in rows if r[1] == "done")
    n_failed = sum(1 for r in rows if r[1] == "failed")
    n_skipped = len(result.get("skipped", {}))
    con.print(
        f"images processed: {n_done}, failed: {n_failed}, skipped: {n_skipped}"
        + (
            " (calibration frames: build masters with `svomflow calib nightly`)"
            if n_skipped
            else ""
        )
    )
    _print_sequences(con, result)
    return n_failed


@contextmanager
def _progress_bar(total: int) -> Iterator[None]:
    """Show a progress bar (counts, elapsed, ETA) advanced as each image ends."""
    from svomflow.cli._progress import progress_bar
    from svomflow.tasks.progress import ProgressEvent, listening

    with progress_bar() as bar:
        task = bar.add_task("gp1 images", total=total)
        seen: set[str] = set()

        def advance(event: ProgressEvent) -> None:
            if event.item is not None and event.item not in seen:  # an image is counted once
                seen.add(event.item)
                name = Path(event.item).name[:32]
                bar.update(task, advance=1, description=f"gp1 {name} {event.doing}")

        with listening(advance):
            yield


@app.command("run")
@user_errors
def run_cmd(
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            help="Pipeline YAML file, or a directory with gp1.yaml (and the images).",
        ),
    ] = None,
    input_: Annotated[
        list[str] | None,
        typer.Option(
            "--input", "-i", help="Input images or directories (override the file's input_dir)."
        ),
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Output root (overrides the file's).")
    ] = None,
    set_: SetOverrides = None,
    no_prefect: Annotated[
        bool, typer.Option("--no-prefect", help="Run in plain Python, without a Prefect flow run.")
    ] = False,
    caldb: CaldbOption = None,
) -> None:
    """Run one GP1 pipeline over a set of images (offline).

    Calibration frames (bias, dark, flat) are skipped with a count. A table says what was
    done, failed (with the reason) and skipped; the exit code is 1 when anything failed.
    """
    from svomflow.tasks.gp1.config import load_gp1_config

    cfg = load_gp1_config(
        config,
        overrides=set_,
        output_dir=output,
        input_dir=input_[0] if input_ and len(input_) == 1 and Path(input_[0]).is_dir() else None,
    )
    sources = list(input_ or ([cfg.input_dir] if cfg.input_dir else []))
    if not sources:
        raise ConfigError("no input: give --input or set input_dir in the configuration")
    images = _images(sources)
    if not images:
        raise InputDataError(f"no FITS image found in {', '.join(sources)}")
    with _progress_bar(len(images)):
        result = _run(images, cfg, caldb, no_prefect)
    if _print_table(images, result):
        raise typer.Exit(1)


def _run(images: list[Path], cfg: Any, caldb: str | None, no_prefect: bool) -> dict[str, Any]:
    """Run the pipeline over ``images`` in plain Python or as a flow run on the server."""
    if no_prefect:
        from svomflow.flows.gp1 import process_images

        return process_images(images, cfg, caldb_root=caldb)
    from svomflow.cli._common import flow_server
    from svomflow.flows.gp1 import gp1_reduction

    # the configuration as a mapping: Prefect validates it into the model (as from the UI)
    settings: Any = cfg.model_dump(mode="json")
    with flow_server(), user_errors_printed_once():
        result: dict[str, Any] = gp1_reduction(
            images=[str(p) for p in images], config=settings, caldb_root=caldb
        )
    return result


@app.command("watch")
@user_errors
def watch_cmd(
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="Watcher YAML file (pipelines, routing).")
    ] = None,
    input_: Annotated[
        str | None, typer.Option("--input", "-i", help="Directory to watch (overrides the file's).")
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Output root for every instance.")
    ] = None,
    ledger: Annotated[
        str | None, typer.Option("--ledger", help="Ledger file (overrides the file's).")
    ] = None,
    polling: Annotated[bool, typer.Option("--polling", help="Use the polling observer.")] = False,
    until_idle: Annotated[
        float | None, typer.Option("--until-idle", help="Exit after this many idle seconds.")
    ] = None,
    no_prefect: Annotated[
        bool,
        typer.Option("--no-prefect", help="Process in plain Python, without Prefect flow runs."),
    ] = False,
    set_: SetOverrides = None,
    caldb: CaldbOption = None,
    follow_positions: Annotated[
        str | None,
        typer.Option(
            "--follow-positions",
            help="NATS server(s), comma-separated: each image runs with its burst's best "
            "announced position (QPO_ECL, PO, SRCLIST_MXT...; docs/alert_loop.md).",
        ),
    ] = None,
) -> None:
    """Watch a directory and process each complete image with the pipeline its header selects.

    With ``--until-idle`` (a batch), the exit code is 1 when an image of this session failed.
    With ``--follow-positions``, a durable consumer of the product announcements keeps each
    burst's best position (state in the home, kept across restarts) and GP1 chooses the
    afterglow with it.
    """
    import logging

    from svomflow.operations.gp1_watch import GP1Watcher
    from svomflow.tasks.gp1.config import load_watch_config

    cfg = load_watch_config(
        config, overrides=set_, input_dir=input_, output_dir=output, ledger=ledger, caldb=caldb
    )
    if polling:
        cfg = cfg.model_copy(update={"use_polling": True})
    processor = None
    if no_prefect:
        from svomflow.operations.gp1_watch import plain_processor

        processor = plain_processor(cfg.caldb)

    feed_thread = None
    if follow_positions:
        from svomflow.operations.gp1_watch import default_processor
        from svomflow.operations.position_feed import (
            FeedSettings,
            FeedThread,
            PositionFeed,
            guided_processor,
        )
        from svomflow.paths import data_home

        servers = tuple(x.strip() for x in follow_positions.split(",") if x.strip())
        feed = PositionFeed(state_file=data_home() / "gp1_positions.json")
        try:
            feed_thread = FeedThread(feed, FeedSettings(servers=servers)).start()
        except Exception as exc:  # NATS down or the stream missing: say it in one line
            raise ServerUnavailableError(
                f"cannot follow positions on {follow_positions}: {exc}"
            ) from None
        processor = guided_processor(processor or default_processor, feed)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    w = GP1Watcher(cfg, processor)
    typer.echo(
        f"watching {w.input_dir} ({len(cfg.pipelines)} pipeline instances); "
        f"ledger {w.ledger.path}; Ctrl-C to stop"
    )
    import datetime as _dt

    started = _dt.datetime.now(_dt.UTC).isoformat()
    try:
        w.run(until_idle=until_idle)
    finally:
        if feed_thread is not None:
            feed_thread.stop()
    rows = w.ledger.rows()
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    typer.echo("ledger: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    # this session's items (ISO UTC stamps compare as text)
    mine = [r for r in rows if str(r.get("claimed") or r.get("finished") or "") >= started]
    failed = [r for r in mine if r["status"] == "failed"]
    for r in failed:
        typer.echo(f"  failed {Path(str(r['path'])).name}: {r.get('reason') or ''}", err=True)
    if failed:
        typer.echo(f"{len(failed)} of {len(mine)} images failed in this session", err=True)
        raise typer.Exit(1)


_MODULE_NAMES = (
    "reduction",
    "findstars",
    "astrometry",
    "stacking",
    "photometry",
    "subtraction",
    "summary",
)


def _module_config(name: str, config: str | None, output: str, set_: list[str] | None) -> Any:
    """Pipeline config from packaged defaults plus a module file (a section or a full file)."""
    from svomflow.config.loader import read_yaml_mapping
    from svomflow.tasks.gp1.config import load_gp1_config

    overrides = list(set_ or [])
    cfg = load_gp1_config(None, overrides=overrides, output_dir=output)
    if config is None:
        return cfg
    data = read_yaml_mapping(config)
    if "steps" in data or any(k in data for k in ("output_dir", "instrument", "route")):
        return load_gp1_config(config, overrides=overrides, output_dir=output)
    from pydantic import ValidationError
    from svomflow.config.loader import format_validation_error

    section = getattr(cfg.steps, name).model_dump(mode="json")
    from svomflow.config import deep_merge

    try:
        new = type(getattr(cfg.steps, name)).model_validate(deep_merge(section, data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source=f"{name} module file")) from None
    setattr(cfg.steps, name, new)
    return cfg


# the modules each module needs before it (per image, then the sequence)
_CHAIN = ("reduction", "findstars", "astrometry", "photometry", "subtraction")


def _modules_for(name: str, cfg: Any) -> Any:
    """Return the configuration with the modules ``name`` needs switched on, later ones off.

    A per-image module runs after those it needs; ``stacking`` and ``summary`` work on a
    sequence, so every per-image module runs first, then the stack and the products
    (``summary`` keeps the configuration's stacking switch).
    """
    per_image = name in _CHAIN
    wanted = set(_CHAIN[: _CHAIN.index(name) + 1]) if per_image else {*_CHAIN, "summary"}
    if name == "stacking":
        wanted.add("stacking")
    for module in (*_CHAIN, "stacking", "summary"):
        if module == "stacking" and name == "summary":
            continue
        getattr(cfg.steps, module).enabled = module in wanted
    return cfg


def _module_inputs(inputs: list[str]) -> list[Path]:
    """Images given to ``gp1 module``: raw or reduced FITS files, or directories of them."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if not p.exists():
            raise InputDataError(f"input {p} does not exist")
        out += _images([item])
    if not out:
        raise InputDataError(f"no FITS image found in {', '.join(inputs)}")
    return out


@app.command("module")
@user_errors
def module_cmd(
    name: Annotated[str, typer.Argument(help="Module: " + ", ".join(_MODULE_NAMES))],
    input_: Annotated[
        list[str],
        typer.Option(
            "--input",
            "-i",
            help="Raw images, reduced images (a REDIMG product: the reduction passes them "
            "through) or directories of them.",
        ),
    ],
    output: Annotated[str, typer.Option("--output", "-o", help="Output root.")],
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            help="Module YAML (its section) or a pipeline file; packaged defaults otherwise.",
        ),
    ] = None,
    set_: SetOverrides = None,
    caldb: CaldbOption = None,
    reduced: Annotated[
        bool,
        typer.Option(
            "--reduced",
            help="The inputs are already reduced images (any camera): skip the reduction "
            "(overscan, masters) and analyse the pixels as they are.",
        ),
    ] = False,
) -> None:
    """Run one module on images, after the modules it needs (in plain Python).

    Every image given is analysed, alert image or not. The products of every module that
    ran are published under the output root.
    """
    from svomflow.flows.gp1 import process_images

    if name not in _MODULE_NAMES:
        raise ConfigError(f"unknown module {name!r}; one of {', '.join(_MODULE_NAMES)}")
    cfg = _modules_for(name, _module_config(name, config, output, set_))
    cfg.analyse_all = True
    if reduced:
        cfg.steps.reduction.enabled = False
    images = _module_inputs(input_)
    result = process_images(images, cfg, caldb_root=caldb)
    typer.echo(f"{name}: {len(result['images'])} image(s)")
    for path, img in result["images"].items():
        typer.echo(f"  {Path(path).name}: {img['sequence']} ({', '.join(img['done'])})")
        for warning in img.get("warnings", []):
            typer.echo(f"svomflow: warning: {Path(path).name}: {warning}", err=True)
        for code, where in img["products"].items():
            typer.echo(f"    {code}: {where}")
    if result["sequences"] or result["failed"]:
        _print_result({**result, "images": {}})
    if result["failed"] and not result["images"]:
        raise typer.Exit(1)
