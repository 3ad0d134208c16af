"""Benchmark: alert message to the last VHF product, cold process vs warm long-lived process.

The same simulated bright burst (about 1e6 events, ECLAIRs + GRM; simulated once) is
processed for each of N alerts, alternating the ways so all see the same load:

* cold (the peer): a fresh ``svomflow vhf --no-prefect`` process per alert, the numba
  kernel cache already filled (as after ``make warm``): imports, cache loading, reading,
  the pipeline and the products;
* warm: one long-lived process with the imports and the compiled kernels loaded parses the
  alert message and runs the same pipeline without Prefect
  (:func:`~svomflow.flows.vhf.run_vhf_plain`): the floor of the warm path;
* direct: ``svomflow listen --mode direct`` (a child process, one warm-up alert first) with
  a route to the VHF flow: the alert is published on NATS JetStream, the listener claims
  it, creates its flow run on the long-lived Prefect server (the one ``PREFECT_API_URL``
  names, else this home's local one, started if needed) under the alert's idempotency key
  and executes it in its own process;
* served: the default operation, ``svomflow listen`` in deployment mode creates a run of
  the ``vhf_quick_analysis/vhf`` deployment that a warm ``svomflow serve --flow vhf``
  (children: the listener and the serve process) executes, each run forked from the serve
  process's preloaded server (``operations/warm_runner.py``), the runner polling every
  second.

The NATS ways are skipped, with the reason, when no NATS server with JetStream answers or
no Prefect server can start.

Latency is from the alert message (the process start, the message parsed, the message
published) to the end of the run, when its last product and its database row are written
(the flow run's end time on the server for the NATS ways). Median and 95th percentile over
N alerts (default 20; ``--alerts N`` for fewer on a loaded machine, which the output says),
and the CPU seconds per alert of the processes doing the work (the load taken out; the
NATS ways leave out what the Prefect server spends on their API calls; the served way
counts the listener, the serve process, its forkserver and the run's process). Target
(issue 14): p95 under 5 s for the 1e6-event burst on 2 cores.

Run: ``python -m benchmarks.bench_alert_latency [--alerts N] [--prefect-postgres URL]``
(``--prefect-postgres``: the NATS ways on a Prefect server on a fresh database of that
PostgreSQL server, to compare with the home's server on SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._burst import median_p95, simulate_burst
from benchmarks._report import load, result

TARGET_S = 5.0


def _alert(k: int, tag: str = "") -> str:
    """Return alert message ``k`` (JSON, as the listener receives it); ``tag`` makes it unique."""
    return json.dumps(
        {
            "id": f"bench-{tag}{k}",
            "trigger_id": f"sb9{tag}{k:07d}",
            "trigger_time": "2026-11-23T04:00:00Z",
            "ra_deg": 187.25,
            "dec_deg": -12.5,
            "error_deg": 0.15,
        }
    )


def _cpu(who: int) -> float:
    """CPU seconds (user + system) so far of this process or of its waited-for children."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _cold(files: list[str], out: Path, k: int) -> float:
    """Return the wall time of one fresh ``svomflow vhf --no-prefect`` process."""
    exe = Path(sys.executable).with_name("svomflow")
    cmd = [str(exe), "vhf", "--no-prefect", "--json", "--obs-id", f"sbcold{k:04d}"]
    cmd += ["--out", str(out)] + [a for f in files for a in ("--events", f)]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"cold run {k} failed: {done.stderr.strip()[-500:]}")
    return wall


def _warm(files: list[str], out: Path, k: int) -> float:
    """Return the time from alert message ``k`` to the end of its run in this process."""
    from svomflow.flows.vhf import run_vhf_plain
    from svomflow.products.alert_messages import parse_alert

    t = time.perf_counter()
    alert = parse_alert(_alert(k))
    run_vhf_plain(files, alert.trigger_id, out_dir=str(out))
    return time.perf_counter() - t


def _tree_cpu(pid: int) -> float:
    """CPU seconds so far of a process and its descendants, reaped ones included (Linux)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile: counted by its parent once reaped
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        # utime + stime + cutime + cstime: a reaped child's CPU is in its parent's c-times
        times[child] = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        tree.add(p)
        todo.extend(c for c, pp in parents.items() if pp == p and c not in tree)
    return sum(times.get(p, 0.0) for p in tree)


class _NatsPath:
    """An alert path through NATS: ``svomflow listen`` routing alerts to the VHF flow.

    ``mode`` "direct": the listener runs the flow itself. "deployment": the listener creates
    a run of the VHF deployment that a (warm) ``svomflow serve --flow vhf`` child executes.
    """

    def __init__(self, root: Path, files: list[str], nats_url: str, api_url: str, mode: str):
        self.root, self.nats_url, self.api_url, self.mode = root, nats_url, api_url, mode
        self.tag = uuid.uuid4().hex[:6]  # alert ids unique on the long-lived server
        self.subject = f"bench{self.tag}.svom.alert.eclairs"
        self.db = f"sqlite:///{root / f'{mode}.db'}"
        self.procs: list[subprocess.Popen[bytes]] = []
        #: per alert, seconds spent in each stage (see :meth:`_stages`)
        self.stages: list[dict[str, float]] = []
        self.config = {
            "servers": [nats_url],
            "stream": f"BENCH_{self.tag}",
            "durable": f"bench-{self.tag}",
            "mode": mode,
            "database_url": self.db,
            "dead_letter_subject": f"bench{self.tag}.deadletter",
            "routes": [
                {
                    "subject": self.subject,
                    "flow": "vhf",
                    "instrument": "eclairs",
                    "parameter_map": {"obs_id": "trigger_id"},
                    "parameters": {
                        "event_files": files,
                        "out_dir": str(root / mode),
                        "database_url": self.db,
                    },
                }
            ],
        }

    def _child(self, args: list[str], name: str, ready: str, timeout_s: float) -> None:
        """Start ``svomflow ARGS`` (log ``name``.log); return once its log shows ``ready``."""
        env = dict(os.environ, PREFECT_API_URL=self.api_url)
        log_path = self.root / f"{self.mode}-{name}.log"
        exe = Path(sys.executable).with_name("svomflow")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [str(exe), *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        deadline = time.time() + timeout_s
        while ready not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"svomflow {args[0]} did not start: {self.log_tail()}")
            time.sleep(0.2)

    def start(self, timeout_s: float = 300.0) -> None:
        """Start the serve process (deployment mode) and the listener; return once ready."""
        import yaml

        if self.mode == "deployment":
            self._child(["serve", "--flow", "vhf"], "serve", "serving ", timeout_s)
        cfg = self.root / f"{self.mode}-listen.yaml"
        cfg.write_text(yaml.safe_dump(self.config))
        self._child(["listen", "--config", str(cfg)], "listen", "listening on", timeout_s)

    def log_tail(self) -> str:
        return " | ".join(
            p.read_text(errors="replace")[-1500:] for p in self.root.glob(f"{self.mode}-*.log")
        )

    def cpu(self) -> float:
        """CPU seconds so far of the listener and the serve process trees."""
        return sum(_tree_cpu(p.pid) for p in self.procs)

    def alert(self, k: int, timeout_s: float = 300.0) -> float:
        """Publish alert ``k``; return the seconds from publishing to the end of its run."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings
        from svomflow.operations.alerts.background import publish_alert
        from svomflow.operations.alerts.ledger import AlertLedger

        ledger = AlertLedger(self.db)
        msg = _alert(k, self.tag)
        alert_id = json.loads(msg)["id"]
        sent = time.time()
        publish_alert(self.nats_url, self.subject, msg)
        deadline = sent + timeout_s
        # the claim gets its run id once the run ends (direct) or exists (deployment)
        while True:
            row = ledger.get(alert_id, "vhf_quick_analysis")
            if row is not None and row.flow_run_id:
                break
            if any(p.poll() is not None for p in self.procs) or time.time() > deadline:
                raise RuntimeError(f"alert {alert_id} did not run: {self.log_tail()}")
            time.sleep(0.05)
        # prefect's settings were read at its import: name the server explicitly
        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            with get_client(sync_client=True) as client:
                while True:
                    run = client.read_flow_run(row.flow_run_id)
                    if run.state is not None and run.state.is_final():
                        break
                    if time.time() > deadline:
                        raise RuntimeError(f"alert {alert_id}: run {run.id} {run.state}")
                    time.sleep(0.1)
                if run.state.type.value != "COMPLETED" or run.end_time is None:
                    why = f"{run.state}: {self.log_tail()}"
                    raise RuntimeError(f"alert {alert_id}: run {run.id} {why}")
                states = client.read_flow_run_states(run.id)
        self.stages.append(self._stages(sent, run, states))
        return run.end_time.timestamp() - sent

    @staticmethod
    def _stages(sent: float, run: Any, states: list[Any]) -> dict[str, float]:
        """Split publish-to-end into stages by the run's state history on the server.

        ``claim``: the message reaching the listener, claimed, and the run created;
        ``pickup``: the serve process's runner finding the run (its polling);
        ``start``: pending to running (the run's process started, the engine set up);
        ``flow``: running to completed (the pipeline and Prefect's work for its tasks).
        A run executed by the listener itself (direct) goes straight to running.
        """
        first: dict[str, float] = {}
        for st in sorted(states, key=lambda x: x.timestamp):
            first.setdefault(st.type.value, st.timestamp.timestamp())
        created = run.created.timestamp()
        running = first.get("RUNNING", created)
        pending = first.get("PENDING", running)
        return {
            "claim": created - sent,
            "pickup": max(pending - created, 0.0),
            "start": max(running - pending, 0.0),
            "flow": run.end_time.timestamp() - running,
        }

    def stop(self) -> None:
        """Stop the listener and the serve process, and remove the stream."""
        from svomflow.operations.local_server import stop_process

        for proc in reversed(self.procs):
            stop_process(proc)

        async def drop() -> None:
            import nats

            nc = await nats.connect(self.nats_url)
            try:
                await nc.jetstream().delete_stream(self.config["stream"])
            finally:
                await nc.close()

        with contextlib.suppress(Exception):
            asyncio.run(drop())


def _jetstream_or_reason(api_url: str | None, api_why: str) -> tuple[str | None, str]:
    """Return the NATS URL if JetStream and a Prefect server are there, else why not."""
    nats_url = (os.environ.get("SVOMFLOW_NATS_SERVERS") or "nats://127.0.0.1:4222").split(",")[0]

    async def jetstream() -> None:
        import nats

        nc = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()

    try:
        asyncio.run(jetstream())
    except Exception as exc:
        return None, f"no NATS server with JetStream at {nats_url} ({exc or type(exc).__name__})"
    if api_url is None:
        return None, api_why
    return nats_url, ""


def _path_or_reason(
    root: Path, files: list[str], nats_url: str, api_url: str, mode: str
) -> tuple[_NatsPath | None, str]:
    """Start one NATS path and send its warm-up alert, or return why it cannot run here."""
    path = _NatsPath(root, files, nats_url, api_url, mode)
    try:
        path.start()
        path.alert(-1)  # the warm-up: the first alert loads what the server did not
    except Exception as exc:
        with contextlib.suppress(Exception):
            path.stop()
        return None, f"the {mode} path failed: {exc}"
    return path, f"{mode}: listener {path.tag} on {nats_url}, Prefect API {api_url}"


@contextlib.contextmanager
def _prefect_on_postgres(server_url: str) -> Any:
    """Yield the API URL of a Prefect server on a fresh database of a PostgreSQL server.

    The database is created on ``server_url`` (any database of it the user may connect to,
    e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``) and dropped afterwards.
    """
    from sqlalchemy import create_engine, make_url, text
    from svomflow.operations.local_server import prefect_server

    name = f"prefect_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(server_url).set(drivername="postgresql+asyncpg", database=name)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, PREFECT_HOME=str(Path(tmp) / "prefect"))
            with prefect_server(
                database_url=url.render_as_string(hide_password=False),
                env=env,
                log_file=Path(tmp) / "server.log",
            ) as api:
                yield api
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def main(argv: list[str] | None = None) -> None:
    """Simulate once, time N alerts each way, print median, p95 and the cold/warm ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20, help="alerts per way (default 20)")
    parser.add_argument(
        "--prefect-postgres",
        metavar="URL",
        help="run the NATS ways on a Prefect server on a fresh database of this PostgreSQL "
        "server (SQLAlchemy URL) instead of the home's server on SQLite",
    )
    args = parser.parse_args(argv)
    n = max(1, args.alerts)
    if args.prefect_postgres:
        with _prefect_on_postgres(args.prefect_postgres) as api:
            print(f"Prefect server on PostgreSQL: {api}")
            _run(n, api, "")
        return
    from svomflow.operations.prefect_server import ensure_server

    # the long-lived server of the real home, found (or started) before the home moves
    try:
        api_url: str | None = ensure_server().api_url
        api_why = ""
    except Exception as exc:
        api_url, api_why = None, f"no Prefect server could start ({exc})"
    _run(n, api_url, api_why)


def _run(n: int, api_url: str | None, api_why: str) -> None:
    """Time ``n`` alerts each way (the NATS ways on the Prefect server ``api_url``)."""
    from svomflow.paths import data_home

    # the kernel cache of the installation (filled by `make warm`), shared by all ways
    cache = os.environ.get("NUMBA_CACHE_DIR") or str(data_home() / "numba_cache")
    os.environ["NUMBA_CACHE_DIR"] = cache
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["SVOMFLOW_HOME"] = str(root / "home")  # its CALDB gets the simulation's
        from svomflow.flows.vhf import run_vhf_plain

        burst = simulate_burst(root / "sim")
        files, n_ev = burst.files, burst.n_events
        print(f"input: {n_ev:,} events (ECLAIRs + GRM); {n} alerts each way; {load()} at start")
        if n < 20:
            print(f"note: {n} alerts instead of 20 (--alerts): the percentiles are rougher")
        run_vhf_plain(files, "warmup", out_dir=str(root / "warmup"))  # fills the cache too
        paths: dict[str, _NatsPath] = {}
        nats_url, why = _jetstream_or_reason(api_url, api_why)
        for mode in ("direct", "deployment"):
            if nats_url is None or api_url is None:
                print(f"{mode} path skipped: {why}")
                continue
            path, why_path = _path_or_reason(root, files, nats_url, api_url, mode)
            print(f"{mode} path: {why_path}" if path else f"{mode} path skipped: {why_path}")
            if path is not None:
                paths[mode] = path
        times: dict[str, list[float]] = {"cold": [], "warm": [], **{m: [] for m in paths}}
        # CPU seconds per alert: the same figures with the machine's load taken out
        cpu: dict[str, list[float]] = {k: [] for k in times}
        try:
            for k in range(n):  # alternate, so that all ways see the same load
                c0 = _cpu(resource.RUSAGE_CHILDREN)
                times["cold"].append(_cold(files, root / "cold", k))
                cpu["cold"].append(_cpu(resource.RUSAGE_CHILDREN) - c0)
                c0 = _cpu(resource.RUSAGE_SELF)
                times["warm"].append(_warm(files, root / "warm", k))
                cpu["warm"].append(_cpu(resource.RUSAGE_SELF) - c0)
                for mode, path in paths.items():
                    c0 = path.cpu()
                    times[mode].append(path.alert(k))
                    cpu[mode].append(path.cpu() - c0)
                line = "   ".join(f"{w} {v[-1]:6.2f} s" for w, v in times.items())
                print(f"  alert {k + 1}/{n}: {line}", flush=True)
        finally:
            for path in paths.values():
                path.stop()
    stats = {w: median_p95(v) for w, v in times.items()}
    cm, cp = stats["cold"]
    for w, (m, p) in stats.items():
        print(f"{w:10s}: median {m:6.2f} s, p95 {p:6.2f} s, cold/{w} {cm / m:.2f}x (median)")
    print(
        "CPU per alert (median): "
        + ", ".join(f"{k} {np.median(v):.2f} s" for k, v in cpu.items() if v)
        + " (the NATS ways: their processes only, not the Prefect server's share)"
    )
    for mode, path in paths.items():
        if path.stages:
            parts = ", ".join(
                f"{k} {np.median([st[k] for st in path.stages]):.2f} s" for k in path.stages[0]
            )
            print(f"{mode} stages (median, by the run's states on the server): {parts}")
    print(f"{load()} at end")
    wm, wp = stats["warm"]
    result(
        f"alert to last VHF product, 1e6 events, warm process, under {TARGET_S:.0f} s "
        f"(median, p95 over {n})",
        f"{wm:.2f} s, p95 {wp:.2f} s; CPU {np.median(cpu['warm']):.2f} s",
        f"cold fresh process {cm:.2f} s, p95 {cp:.2f} s, CPU {np.median(cpu['cold']):.2f} s: "
        f"{cm / wm:.2f}x the warm",
        wp < TARGET_S,
    )
    ways = {
        "direct": "`svomflow listen --mode direct` with the long-lived Prefect server",
        "deployment": "`svomflow listen` (deployment mode) and a warm `svomflow serve`",
    }
    for mode, words in ways.items():
        if mode in stats:
            m, p = stats[mode]
            result(
                f"alert published on NATS to last VHF product, 1e6 events, {words}, "
                f"under {TARGET_S:.0f} s (median, p95 over {n})",
                f"{m:.2f} s, p95 {p:.2f} s; CPU {np.median(cpu[mode]):.2f} s",
                f"cold fresh process {cm:.2f} s, p95 {cp:.2f} s: {cm / m:.2f}x the {mode} way",
                p < TARGET_S,
            )


if __name__ == "__main__":
    main()
