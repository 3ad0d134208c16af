"""``svomflow demo``: simulate one bright GRB and run the VHF quick analysis on a local Prefect server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from svomflow.cli._common import products_url_for_links, user_errors

__all__ = ["demo", "run_demo"]

SCENARIO = "bright_long_grb"

#: Told ``(done, total, what is being done now)`` as the demo advances (a progress bar).
DemoProgress = Callable[[int, int, str], None]


def _simulate(inp: Path, seed: int, step: Callable[[str], None]) -> dict[str, Any]:
    """Simulate the demo burst, or reuse the files of the same scenario and seed.

    Reused files have their calibration registered again in the home's CALDB (a no-op when
    it is already the current one), since the flow selects it there.
    """
    import json

    from svomflow.config import load_instrument
    from svomflow.simulation.calibration import register_calibration
    from svomflow.simulation.scenario import load_scenario, run_scenario

    truth_file = inp / "truth.json"
    if truth_file.is_file():  # same scenario and seed give the same files: reuse them
        truth = json.loads(truth_file.read_text())
        calibration = _calibration_files(truth)
        wanted = _event_files(truth) + [f for fs in calibration.values() for f in fs.values()]
        if truth.get("seed") == seed and calibration and all((inp / f).is_file() for f in wanted):
            for name, files in calibration.items():
                register_calibration({c: inp / f for c, f in files.items()}, load_instrument(name))
            return truth
    return run_scenario(load_scenario(SCENARIO), inp, seed, progress=step)


def _event_files(truth: dict[str, Any]) -> list[str]:
    return [v["files"]["events"] for v in truth["instruments"].values()]


def _calibration_files(truth: dict[str, Any]) -> dict[str, dict[str, str]]:
    """``{instrument: {code: file}}`` of the simulation (empty for files made before them)."""
    return {
        name: v["files"]["calibration"]
        for name, v in truth["instruments"].items()
        if v["files"].get("calibration")
    }


def _truth_rows(res: dict[str, Any], truth: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(quantity, measured, injected) rows of the demo's table."""
    from svomflow.instruments.attitude import angular_separation_deg
    from svomflow.simulation.bench import _efficiencies, counts_durations, grb_model_from_truth

    src = truth["sources"][0]
    model = grb_model_from_truth(src)
    shift = res["t0"] - src["t0"]
    rows = [("T0 (mission s)", f"{res['t0']:.3f}", f"{src['t0']:.3f} (burst start reference)")]
    for name, (eff, _) in _efficiencies(truth).items():
        per = res["per_instrument"].get(name)
        if not per or per["t90"] is None:
            continue
        band = tuple(per["band_kev"])
        true = counts_durations(model, band, eff)
        label = f"{band[0]:g}-{band[1]:g} keV"
        rows.append(
            (
                f"T90 {name} {label} (s)",
                f"{per['t90']:.2f} ± {per['t90_err']:.2f}",
                f"{true['t90']:.2f} (counts); photon {src['bands'].get(f'{band[0]:g}-{band[1]:g}', {}).get('t90', float('nan')):.2f}",
            )
        )
        rows.append(
            (
                f"T90 start {name} (s from injected T0)",
                f"{per['t90_start'] + shift:.2f} ± {per['t90_start_err']:.2f}",
                f"{true['t90_start']:.2f}",
            )
        )
        rows.append(
            (f"T50 {name} (s)", f"{per['t50']:.2f} ± {per['t50_err']:.2f}", f"{true['t50']:.2f}")
        )
    for name, p in res["positions"].items():
        sep = float(
            angular_separation_deg(p["ra_deg"], p["dec_deg"], src["ra_deg"], src["dec_deg"])
        )
        if "r90_arcmin" in p:
            rows.append(
                (
                    f"position {name}",
                    f"RA {p['ra_deg']:.3f} Dec {p['dec_deg']:.3f} r90 {p['r90_arcmin']:.1f}'",
                    f"RA {src['ra_deg']:.3f} Dec {src['dec_deg']:.3f} (off by {sep * 60:.2f}')",
                )
            )
        else:
            rows.append(
                (
                    f"position {name}",
                    f"RA {p['ra_deg']:.1f} Dec {p['dec_deg']:.1f} r90 {p['error_radius_90_deg']:.1f} deg",
                    f"off by {sep:.1f} deg",
                )
            )
    c = res.get("classification")
    if c:
        rows.append(
            ("class", f"{c['class']} (p_short {c['p_short']:.3f})", "long (injected long family)")
        )
    for name, sp in res.get("spectrum", {}).items():
        ep = sp["parameters"].get("epeak")
        if ep:
            rows.append(
                (
                    f"Epeak {name} {sp['model']} (keV)",
                    f"{ep['value']:.0f} ± {ep['error']:.0f}",
                    f"{src['spectrum']['epeak']:.0f} at onset, decaying ({src['evolution']['mode']})",
                )
            )
    return rows


def run_demo(
    *,
    seed: int = 1,
    port: int = 4200,
    stop_server_after: bool = False,
    progress: DemoProgress | None = None,
) -> dict[str, Any]:
    """Simulate, ensure a Prefect server, run the flow against it; return what to print.

    ``progress`` is told each stage: the simulation's steps (bursts, then instruments; all
    at once when the files of the same seed are reused), the Prefect server, the flow, then
    the instrument centre's data: the science delivery of the burst, the calibration runs
    (skipped, all at once, when a former demo made them) and the housekeeping.
    """
    from svomflow.cli.demo_centre import CALIBRATION_RUNS
    from svomflow.operations.prefect_server import ensure_server, stop_server
    from svomflow.paths import data_home
    from svomflow.simulation.scenario import load_scenario

    tell = progress or (lambda done, total, doing: None)
    scenario = load_scenario(SCENARIO)
    n_sim = len(scenario.grbs) + len(scenario.instruments)
    # simulation, server, burst flow, science delivery, calibration runs, housekeeping
    total, done = n_sim + 3 + CALIBRATION_RUNS + 1, 0
    tell(done, total, "simulating a bright long GRB (ECLAIRs + GRM)")

    def simulated(what: str) -> None:  # told as each step starts: the earlier ones are done
        nonlocal done
        tell(done, total, what)
        done = min(done + 1, n_sim)

    obs_id = f"{SCENARIO}_{seed}"
    base = data_home() / "demo" / obs_id
    inp = base / "input"
    truth = _simulate(inp, seed, simulated)
    tell(n_sim, total, "Prefect server (started on first use, then reused)")
    # the artifact's product links open: serve the products next to svomflow's own server
    own_server = "PREFECT_API_URL" not in os.environ
    info = ensure_server(port=port)
    os.environ["PREFECT_API_URL"] = info.api_url
    links = products_url_for_links(quiet=True, start=own_server)
    if links:
        os.environ["SVOMFLOW_PRODUCTS_URL"] = links
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from svomflow.flows.adapter import default_output_root
    from svomflow.flows.vhf import vhf_quick_analysis

    tell(n_sim + 1, total, f"VHF quick analysis flow on {info.api_url}")
    with temporary_settings(updates={PREFECT_API_URL: info.api_url}):
        # products go to the home's products root, where `products list` and the product
        # server find them
        res = vhf_quick_analysis(
            event_files=[str(inp / f) for f in _event_files(truth)], obs_id=obs_id
        )
        # the instrument-centre site's other pages (a failure only costs those pages)
        tell(n_sim + 2, total, "science delivery of the burst's products")
        science = _extra(lambda: _deliver(obs_id))
        calibration = _extra(
            lambda: _calibrate(data_home() / "demo" / "calibration", seed, tell, n_sim + 3, total)
        )
    from svomflow.cli.demo_centre import seed_centre

    src = truth["sources"][0]
    tell(total - 1, total, "a day of housekeeping, alarms, duty roster, planning")
    centre = _extra(
        lambda: seed_centre(
            base / "housekeeping", user="admin", ra=src["ra_deg"], dec=src["dec_deg"], seed=seed
        )
    )
    tell(total, total, "done")
    from svomflow.web.server import running_web_server

    site = running_web_server()  # started detached with the links above
    stopped = False
    if stop_server_after and info.started_here:
        stopped = stop_server()
    return {
        "obs_id": obs_id,
        "input": str(inp),
        "products_dir": str(default_output_root() / obs_id),
        "products": res["products"],
        "server": info,
        "server_stopped": stopped,
        "site": site,
        "centre": centre,
        "science": science,
        "calibration": calibration,
        "flow_run_url": info.flow_run_url(res["flow_run_id"]) if res.get("flow_run_id") else None,
        "rows": _truth_rows(res, truth),
        "result": res,
    }


def _extra(make: Callable[[], Any]) -> Any:
    """Return what ``make`` adds to the site, or why it was not added (the burst is the demo)."""
    try:
        return make()
    except Exception as exc:  # the burst's analysis is the demo; the site's extras are extra
        return f"not added ({type(exc).__name__}: {exc})"


def _deliver(obs_id: str) -> dict[str, Any]:
    """Run the science delivery flow on the demo burst (it judges each version once)."""
    from svomflow.flows.science_delivery import science_delivery

    return science_delivery(obs_id=obs_id)


def _calibrate(folder: Path, seed: int, tell: DemoProgress, first: int, total: int) -> Any:
    """Run the calibration flows of both centres (progress: steps ``first`` on, one a run)."""
    from svomflow.cli.demo_centre import CALIBRATION_RUNS, seed_calibration

    done = first

    def step(what: str) -> None:  # told as each run starts: the earlier ones are done
        nonlocal done
        tell(done, total, what)
        done = min(done + 1, first + CALIBRATION_RUNS)

    return seed_calibration(folder, seed=seed, step=step)


@user_errors
def demo(
    seed: Annotated[
        int, typer.Option("--seed", help="Simulation seed (fixed: same burst every time).")
    ] = 1,
    port: Annotated[int, typer.Option("--port", help="Port of the local Prefect server.")] = 4200,
    stop: Annotated[
        bool,
        typer.Option(
            "--stop-server", help="Stop the Prefect server afterwards if the demo started it."
        ),
    ] = False,
) -> None:
    """Simulate a bright GRB, run vhf_quick_analysis on a local Prefect server, show the results."""
    from rich.console import Console
    from rich.table import Table
    from svomflow.cli._progress import progress_bar

    console = Console()
    with progress_bar() as bar:
        task = bar.add_task("demo", total=None)

        def show(done: int, total: int, doing: str) -> None:
            bar.update(task, completed=done, total=total, description=f"demo: {doing}")

        out = run_demo(seed=seed, port=port, stop_server_after=stop, progress=show)
    info = out["server"]
    console.print(f"input (simulated L1 + truth.json): {out['input']}", soft_wrap=True)
    table = Table(title=f"VHF quick analysis of {out['obs_id']}: measured vs injected")
    for col in ("quantity", "measured", "injected"):
        table.add_column(col)
    for r in out["rows"]:
        table.add_row(*r)
    console.print(table)
    console.print(f"{len(out['products'])} products in {out['products_dir']}", soft_wrap=True)
    state = "started now" if info.started_here else "already running"
    console.print(f"Prefect server ({state}): {info.ui_url}", soft_wrap=True)
    if out["flow_run_url"]:
        console.print(f"flow run in the Prefect UI: {out['flow_run_url']}", soft_wrap=True)
    if out["server_stopped"]:
        console.print("the Prefect server was stopped (--stop-server)")
    elif info.started_here:
        console.print("the Prefect server is left running; stop it with: svomflow server stop")
    else:
        console.print("the Prefect server was already running and is left as it was")
    if out["site"]:
        _print_site(console, out["site"])
    _print_centre(console, out)
    from svomflow.paths import home_with_reason

    console.print("later commands use this home and server from this folder; elsewhere:")
    console.print(f"  export SVOMFLOW_HOME={home_with_reason()[0]}", soft_wrap=True)
    if not out["server_stopped"]:
        console.print(f"  export PREFECT_API_URL={info.api_url}", soft_wrap=True)


def _print_centre(console: Any, out: dict[str, Any]) -> None:
    """Say what the demo put in the site besides the burst (or why it could not)."""
    centre, science, cal = out.get("centre"), out.get("science"), out.get("calibration")
    if isinstance(centre, str):
        console.print(f"  housekeeping, duty and planning {centre}", soft_wrap=True)
    elif centre is not None:
        console.print(
            f"  with a day of ECLAIRs/COLIBRI housekeeping ({centre.samples} new samples, "
            f"{centre.alarms} alarms raised), admin on duty, and tonight's COLIBRI planning "
            "of the burst",
            soft_wrap=True,
        )
    if isinstance(science, str):
        console.print(f"  science database {science}", soft_wrap=True)
    elif science is not None and (science["delivered"] or science["refused"]):
        console.print(
            f"  science database (/science): {len(science['delivered'])} versions of the burst "
            f"delivered, {len(science['refused'])} refused",
            soft_wrap=True,
        )
    elif science is not None:
        console.print(
            "  science database (/science): the burst's versions as a former demo delivered them",
            soft_wrap=True,
        )
    if isinstance(cal, str):
        console.print(f"  calibration history {cal}", soft_wrap=True)
    elif cal is not None and cal.nights + cal.eic_runs:
        console.print(
            f"  calibration history (/calibration): {cal.nights} COLIBRI nights of masters and "
            f"{cal.eic_runs} ECLAIRs plane calibrations run now, {cal.promoted} candidates "
            f"promoted, {cal.refused} refused",
            soft_wrap=True,
        )
    elif cal is not None:
        console.print(
            "  calibration history (/calibration): COLIBRI masters and ECLAIRs calibrations "
            "of a former demo",
            soft_wrap=True,
        )


def _print_site(console: Any, url: str) -> None:
    """Say where the instrument-centre site is and how to sign in (first admin made here)."""
    from sqlmodel import Session
    from svomflow.paths import data_home
    from svomflow.web.auth import ensure_first_admin
    from svomflow.web.db import engine_for

    secret = data_home() / "web" / "admin-password"
    with Session(engine_for(None)) as s:
        created = ensure_first_admin(s, secret)
    console.print(f"instrument-centre site (products, housekeeping, alarms): {url}", soft_wrap=True)
    if created:
        password = secret.read_text().strip()
        console.print(f"  sign in as admin, password {password} (also in {secret})", soft_wrap=True)
    elif secret.is_file():
        console.print(f"  sign in as admin (password in {secret})", soft_wrap=True)
