"""Operations commands: ``serve``, ``deploy``, ``listen``, ``reprocess``, ``status``, ``products``.

* ``svomflow serve``: deployments of every registered flow (nightly calibration on cron),
  executed by this process; ``--start-server`` also runs a local Prefect server.
* ``svomflow deploy --pool NAME``: the same deployments on a process work pool (workers on
  other machines), and the equivalent ``prefect.yaml``.
* ``svomflow listen``: NATS JetStream alerts -> flow runs.
* ``svomflow reprocess --flow F --burst ID [--set k=v]``: re-run on the same inputs.
* ``svomflow status [KEY]`` and ``svomflow products list|show``: the products database.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from svomflow.cli._common import ConfigFiles, SetOverrides, user_errors
from svomflow.errors import ConfigError, SvomflowError

__all__ = ["deploy", "listen", "products_app", "reprocess", "serve", "status"]

products_app = typer.Typer(
    help="List and inspect products in the products database.", no_args_is_help=True
)

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="Products database URL (default $SVOMFLOW_DATABASE_URL or SQLite)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _console() -> Any:
    from rich.console import Console

    # wide enough for ids and paths when the output is not a terminal (pipes, logs)
    return Console(width=None if sys.stdout.isatty() else 200)


def _store(database_url: str | None) -> Any:
    from svomflow.flows.adapter import default_output_root
    from svomflow.products.store import ProductStore

    return ProductStore(default_output_root(), database_url)


def _deployment_settings(**kw: Any) -> Any:
    from svomflow.operations.deployments import DeploymentSettings

    try:
        return DeploymentSettings(**{k: v for k, v in kw.items() if v is not None})
    except ValueError as exc:
        raise ConfigError(f"invalid option: {exc}") from None


@user_errors
def serve(
    flows: Annotated[
        list[str] | None,
        typer.Option("--flow", "-f", help="Flow name/alias to serve (repeat; default all)."),
    ] = None,
    nightly_at: Annotated[
        str, typer.Option(help="Time of the nightly calibration run, HH:MM.")
    ] = "03:00",
    timezone: Annotated[
        str, typer.Option("--timezone", "--tz", help="IANA time zone of --nightly-at.")
    ] = "UTC",
    nightly_cron: Annotated[
        str | None, typer.Option(help="Cron expression instead of --nightly-at.")
    ] = None,
    raw_dir: Annotated[
        str | None,
        typer.Option(help="Raw frames directory of the nightly calibration ($SVOMFLOW_RAW_DIR)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Maximum concurrent flow runs in this process.")
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option("--dask", help="Dask scheduler address or 'local' for the flows' fan-out."),
    ] = None,
    start_server: Annotated[
        bool, typer.Option(help="Also start a local Prefect server (UI) for this session.")
    ] = False,
    port: Annotated[
        int, typer.Option(help="Port of --start-server (a free one if it is taken).")
    ] = 4200,
    prefect_db: Annotated[
        str | None,
        typer.Option(
            help="Prefect server database URL for --start-server (postgresql+asyncpg://...)."
        ),
    ] = None,
    register_only: Annotated[bool, typer.Option(help="Register the deployments and exit.")] = False,
    list_only: Annotated[
        bool, typer.Option("--list", help="List the registered flows and exit.")
    ] = False,
    cold: Annotated[
        bool,
        typer.Option(
            "--cold",
            help="Start each run in a fresh interpreter (Prefect's own serve) instead of forking "
            "it from the preloaded, warm server process.",
        ),
    ] = False,
    poll_interval: Annotated[
        float,
        typer.Option(
            "--poll-interval",
            min=0.1,
            help="Seconds between the runner's queries for runs to start (Prefect's default "
            "is 10 s).",
        ),
    ] = 1.0,
) -> None:
    """Register a deployment for every flow (nightly calibration on cron) and serve them.

    Each run starts in its own process, forked from a server process that loaded the
    served flows and their numba kernels once (--cold: a fresh interpreter per run).
    """
    from svomflow.flows.registry import REGISTRY, load_flows

    if list_only:
        _, missing = load_flows()
        from rich.table import Table

        t = Table("deployment", "key", "tags", "available", "description")
        for s in REGISTRY.values():
            t.add_row(
                s.deployment_name,
                s.key_parameter or "",
                ",".join(s.tags),
                "no: " + missing[s.name] if s.name in missing else "yes",
                s.description,
            )
        _console().print(t)
        return
    if dask:
        os.environ["SVOMFLOW_DASK_ADDRESS"] = dask
    settings = _deployment_settings(
        flows=flows,
        nightly_at=nightly_at,
        timezone=timezone,
        nightly_cron=nightly_cron,
        raw_dir=raw_dir,
        dask_address=dask,
    )
    from svomflow.operations.deployments import (
        apply_deployments,
        build_deployments,
        serve_deployments,
    )

    with contextlib.ExitStack() as stack:
        if start_server:
            from prefect.settings import PREFECT_API_URL, temporary_settings
            from svomflow.operations.local_server import free_port, port_free, prefect_server

            if not port_free(port):  # another home's server, or any other program
                chosen = free_port()
                typer.echo(f"port {port} is taken: the server starts on port {chosen}", err=True)
                port = chosen
            url = stack.enter_context(prefect_server(port=port, database_url=prefect_db))
            typer.echo(f"Prefect server and UI at {url.removesuffix('/api')}")
            stack.enter_context(temporary_settings(updates={PREFECT_API_URL: url}))
        else:
            # PREFECT_API_URL's server, else svomflow's own (never an ephemeral one, which
            # runs no scheduler and vanishes with this process)
            from svomflow.cli._common import flow_server

            stack.enter_context(flow_server())
        deployments, missing = build_deployments(settings)
        for name, why in missing.items():
            typer.echo(f"not served: {name}: {why}", err=True)
        if not deployments:
            raise SvomflowError("no flow could be imported: nothing to serve")
        nightly = [d for d in deployments if d.schedules]
        for d in nightly:
            sched = d.schedules[0]
            state = "active" if sched.active else "inactive (no --raw-dir / $SVOMFLOW_RAW_DIR)"
            typer.echo(
                f"{d.flow_name}/{d.name}: cron '{sched.schedule.cron}' {sched.schedule.timezone} {state}"
            )
        if register_only:
            for name, dep_id in apply_deployments(deployments).items():
                typer.echo(f"registered {name} ({dep_id})")
            return
        serve_deployments(
            deployments,
            limit=limit,
            warm=not cold,
            poll_s=poll_interval,
            say=lambda line: typer.echo(f"svomflow serve: {line}", err=True),
        )


@user_errors
def deploy(
    pool: Annotated[str, typer.Option("--pool", help="Process work pool name.")] = "svomflow",
    flows: Annotated[
        list[str] | None,
        typer.Option("--flow", "-f", help="Flow name/alias (repeat; default all)."),
    ] = None,
    nightly_at: Annotated[
        str, typer.Option(help="Time of the nightly calibration run, HH:MM.")
    ] = "03:00",
    timezone: Annotated[str, typer.Option("--timezone", "--tz", help="IANA time zone.")] = "UTC",
    raw_dir: Annotated[
        str | None, typer.Option(help="Raw frames directory of the nightly calibration.")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Work-pool concurrency limit.")] = None,
    dask: Annotated[
        str | None, typer.Option("--dask", help="Dask scheduler address given to the runs.")
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write prefect.yaml.")
    ] = Path("prefect.yaml"),
    working_directory: Annotated[
        str | None, typer.Option(help="svomflow checkout on the workers (pull step).")
    ] = None,
    write_only: Annotated[
        bool, typer.Option(help="Only write prefect.yaml; register nothing.")
    ] = False,
) -> None:
    """Register the deployments on a Prefect process work pool and write prefect.yaml."""
    from svomflow.operations.deployments import (
        apply_deployments,
        build_deployments,
        ensure_process_pool,
        prefect_yaml,
        write_prefect_yaml,
    )

    settings = _deployment_settings(
        flows=flows, nightly_at=nightly_at, timezone=timezone, raw_dir=raw_dir, dask_address=dask
    )
    repo = working_directory or str(Path(__file__).resolve().parents[2])
    path = write_prefect_yaml(
        output,
        prefect_yaml(settings, work_pool=pool, working_directory=repo, concurrency=concurrency),
    )
    typer.echo(f"wrote {path}")
    if write_only:
        return
    ensure_process_pool(pool, concurrency=concurrency)
    deployments, missing = build_deployments(settings, work_pool=pool)
    for name, why in missing.items():
        typer.echo(f"not deployed: {name}: {why}", err=True)
    for name, dep_id in apply_deployments(deployments).items():
        typer.echo(f"deployed {name} on pool {pool} ({dep_id})")
    typer.echo(f"start workers with: prefect worker start --pool {pool}")


@user_errors
def listen(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Listener settings YAML (servers, routes, mode...)."),
    ] = None,
    servers: Annotated[
        list[str] | None, typer.Option("--server", help="NATS server URL (repeat).")
    ] = None,
    route: Annotated[
        list[str] | None,
        typer.Option(
            "--route", help="SUBJECT=INSTRUMENT[:FLOW] (repeat; replaces the default routes)."
        ),
    ] = None,
    mode: Annotated[
        str | None, typer.Option(help="deployment (run_deployment) or direct (run here).")
    ] = None,
    stream: Annotated[str | None, typer.Option(help="JetStream stream name.")] = None,
    durable: Annotated[str | None, typer.Option(help="Durable consumer name prefix.")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Listen for alerts on NATS JetStream and start the matching flow runs."""
    import asyncio
    import logging
    import signal

    from svomflow.operations.alerts.listener import Route, load_listener_settings, run_listener

    routes = None
    if route:
        routes = []
        for item in route:
            if "=" not in item:
                raise ConfigError(f"--route expects SUBJECT=INSTRUMENT[:FLOW], got {item!r}")
            subject, rest = item.split("=", 1)
            instrument, _, flow = rest.partition(":")
            routes.append(
                Route(subject=subject, instrument=instrument, flow=flow or "alert").model_dump()
            )
    settings = load_listener_settings(
        config,
        servers=servers,
        routes=routes,
        mode=mode,
        stream=stream,
        durable=durable,
        database_url=database_url,
    )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def on_event(kind: str, info: dict[str, Any]) -> None:
            if kind == "ready":
                typer.echo(f"listening on {', '.join(info['subjects'])} ({settings.mode} mode)")

        await run_listener(settings, stop, on_event=on_event)

    asyncio.run(main())


@user_errors
def reprocess(
    flow: Annotated[
        str, typer.Option("--flow", "-f", help="Flow name or alias (vhf, xband, mxt...).")
    ],
    burst: Annotated[
        list[str] | None, typer.Option("--burst", "-b", help="Burst/observation id (repeat).")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--from", help="First date (YYYY-MM-DD) of products to reprocess.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="Last date (YYYY-MM-DD), default today.")
    ] = None,
    config: ConfigFiles = None,
    set_: SetOverrides = None,
    concurrency: Annotated[
        int, typer.Option(help="Flow runs at once (threads; with --dask the workers set it).")
    ] = 2,
    deployment: Annotated[
        bool,
        typer.Option("--deployment/--direct", help="Run through the served deployment or here."),
    ] = False,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            help="Run the flows on the workers of a Dask cluster: a scheduler address "
            "(tcp://host:8786) or 'local' (threads of an in-process cluster).",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Show what would run.")] = False,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-run a flow on the same inputs as the current products (new version if config changed)."""
    from svomflow.operations.reprocess import keys_in_range, plan_reprocess, run_plans

    keys = list(burst or [])
    if since:
        try:
            d0 = date.fromisoformat(since)
            d1 = date.fromisoformat(until) if until else date.today()
        except ValueError as exc:
            raise ConfigError(f"--from/--to: {exc}") from None
        keys += [k for k in keys_in_range(flow, d0, d1, database_url=database_url) if k not in keys]
    if not keys:
        raise ConfigError("give --burst ID (repeatable) or --from DATE [--to DATE]")
    from svomflow.cli._common import flow_server
    from svomflow.cli._progress import progress_bar
    from svomflow.flows.registry import get_spec

    spec = get_spec(flow)  # an unknown flow is a user error before any server is reached
    # the plans read the parameters of the runs that made the products from the server: it
    # must be the flow commands' server, not an ephemeral one with none of their runs
    with flow_server(quiet=as_json or dry_run):
        plans = plan_reprocess(
            spec, keys, sets=set_ or [], config_files=config or [], database_url=database_url
        )
        if dry_run:
            for p in plans:
                typer.echo(
                    f"{p.key}: {p.spec.name} from {p.source}: "
                    f"{json.dumps(p.parameters, default=str)}"
                )
            return
        with progress_bar(disable=as_json) as bar:
            task = bar.add_task(
                f"reprocessing {len(plans)} with {plans[0].spec.name}", total=len(plans)
            )
            results = run_plans(
                plans,
                concurrency=concurrency,
                mode="deployment" if deployment else "direct",
                database_url=database_url,
                progress=lambda r: bar.advance(task),
                dask=dask,
            )
    if as_json:
        typer.echo(json.dumps([r.__dict__ for r in results], indent=1, default=str))
    else:
        from rich.table import Table

        t = Table("burst", "state", "flow run", "products")
        for r in results:
            prods = ", ".join(f"{p['type']} v{p['version']} ({p['change']})" for p in r.products)
            t.add_row(r.key, r.state, r.flow_run_id or "", prods or r.message)
        _console().print(t)
    if any(r.state != "completed" for r in results):
        raise typer.Exit(1)


@user_errors
def status(
    key: Annotated[
        str | None, typer.Argument(help="Burst/observation id, night or input (all if omitted).")
    ] = None,
    flow: Annotated[str | None, typer.Option("--flow", "-f", help="Only this flow.")] = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
    where: Annotated[
        bool,
        typer.Option("--where", help="Print the home, database, CALDB and Prefect server only."),
    ] = False,
) -> None:
    """Show the processing status (received, running, done, failed, superseded)."""
    from svomflow.cli._common import where_lines

    if where:
        from prefect.settings import PREFECT_API_URL
        from svomflow.operations.prefect_server import home_server_url, server_healthy

        configured = PREFECT_API_URL.value()
        api = configured or home_server_url()
        if not api:
            state = "not running: svomflow server start"
        elif server_healthy(api):
            state = "answers, PREFECT_API_URL" if configured else "answers, this home's server"
        else:
            state = "not running: start it or unset PREFECT_API_URL"
        for line in where_lines(f"{api or '-'} ({state})"):
            typer.echo(line)
        return
    if not as_json:
        _say_database(database_url)
    store = _store(database_url)
    rows = [r for r in store.statuses(key) if not flow or r.flow_name == flow]
    prods = store.list(obs_id=key, include_superseded=True) if key else []
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "status": [r.model_dump(mode="json") for r in rows],
                    "products": [
                        {
                            "id": p.id,
                            "type": p.type_code,
                            "version": p.version,
                            "state": "superseded" if p.superseded else "current",
                        }
                        for p in prods
                    ],
                },
                indent=1,
            )
        )
        return
    from rich.table import Table

    t = Table()
    for col in ("key", "flow", "state", "updated (UTC)", "flow run"):
        t.add_column(col, no_wrap=True)
    t.add_column("reason", overflow="fold")
    for r in rows:
        colour = {"failed": "red", "done": "green", "running": "yellow"}.get(r.state, "")
        t.add_row(
            r.key,
            r.flow_name,
            f"[{colour}]{r.state}[/]" if colour else r.state,
            f"{r.updated:%Y-%m-%d %H:%M:%S}",
            (r.flow_run_id or "")[:8],
            r.reason or "",
        )
    _console().print(t)
    if prods:
        p = Table("product", "version", "state", "id")
        for r in prods:
            p.add_row(
                r.type_code, f"v{r.version}", "superseded" if r.superseded else "current", r.id[:12]
            )
        _console().print(p)
    if not rows and not prods:
        typer.echo("no status recorded" + (f" for {key}" if key else ""))


@products_app.command("list")
@user_errors
def products_list(
    burst: Annotated[
        str | None, typer.Option("--burst", "-b", help="Burst/observation id.")
    ] = None,
    type_code: Annotated[
        str | None, typer.Option("--type", "-t", help="Product type code.")
    ] = None,
    instrument: Annotated[str | None, typer.Option("--instrument", "-i")] = None,
    all_versions: Annotated[
        bool, typer.Option("--all", help="Include superseded versions.")
    ] = False,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List products (current versions unless --all)."""
    if not as_json:
        _say_database(database_url)
    rows = _store(database_url).list(
        obs_id=burst, type_code=type_code, instrument=instrument, include_superseded=all_versions
    )
    if as_json:
        typer.echo(json.dumps([_row_dict(r, provenance=False) for r in rows], indent=1))
        return
    from rich.table import Table

    t = Table()
    for col in ("id", "burst", "type", "instrument", "version", "state", "created (UTC)"):
        t.add_column(col, no_wrap=True)
    t.add_column("path", overflow="fold")
    for r in rows:
        t.add_row(
            r.id[:12],
            r.obs_id,
            r.type_code,
            r.instrument,
            f"v{r.version}",
            "superseded" if r.superseded else "current",
            f"{r.created:%Y-%m-%d %H:%M:%S}",
            r.path,
        )
    _console().print(t)


def _say_database(database_url: str | None) -> None:
    """Say on stderr which products database (and home) a listing reads."""
    from svomflow.cli._common import redact_url, where_lines

    home, db = (line.split(None, 1)[1] for line in where_lines()[:2])
    if database_url:
        db = f"{redact_url(database_url)} (--database-url)"
    typer.echo(f"svomflow: database {db}; home {home}", err=True)


def _row_dict(r: Any, provenance: bool = True) -> dict[str, Any]:
    d = r.model_dump(mode="json")
    if not provenance:
        d.pop("provenance", None)
    return d


@products_app.command("show")
@user_errors
def products_show(
    product_id: Annotated[
        str, typer.Argument(help="Product id (a unique prefix of 6+ characters works).")
    ],
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one product with its provenance."""
    row = _store(database_url).get(product_id)
    if row is None:
        raise SvomflowError(f"no product {product_id!r} (or the prefix is ambiguous)")
    d = _row_dict(row)
    if as_json:
        typer.echo(json.dumps(d, indent=1))
        return
    from rich.table import Table

    t = Table("field", "value", show_header=False)
    for k, v in d.items():
        if k != "provenance":
            t.add_row(k, str(v))
    prov = d.get("provenance") or {}
    for k in ("software", "flow_name", "flow_run_id", "host", "started", "finished"):
        t.add_row(f"provenance.{k}", str(prov.get(k, "")))
    for i in prov.get("inputs", []):
        t.add_row("input", f"{i['path']} ({i['sha256'][:12]})")
    for c in prov.get("calibration", []):
        t.add_row("calibration", f"{c['codename']}: {c['path']}")
    t.add_row("config", json.dumps(prov.get("config", {}), sort_keys=True)[:2000])
    _console().print(t)
