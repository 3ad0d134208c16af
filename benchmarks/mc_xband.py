"""X-band spectral-fit Monte Carlo: bias, pulls and 1-sigma coverage on simulated bursts.

Run: ``python -m benchmarks.mc_xband [--n N] [--span T0 T1] [--seed S] [--population
bright|mixed] [--fits ECLGRM GRM ECL] [--set spectral.KEY=VALUE ...] [--trials-out F]
[--json]``. Each trial is :func:`svomflow.simulation.xband_mc.run_trial` (the simulator and
the analysis the X-band tests use, i.e. the flow's steps and configuration): one ECLAIRs +
GRM burst simulated over ``span`` s around T0, its main interval fitted as the flow does
(default configuration, changed by ``--set``), jointly and, with ``--fits``, per
instrument. Populations: ``bright`` (Band alpha -0.8, beta -2.4, Epeak 200 keV, peak flux
``--peak-flux``, 8 deg off axis), ``mixed`` (as ``benchmarks/mc_eclairs_method.py``: Band or
CPL, bright or faint, 5-30 deg off axis; no steady source).

Prints one line per trial (main interval, post-burst interval or not, background orders,
beta constrained or not, parameters at a bound, pulls), then per quantity the bias, the
median pull and the 1-sigma coverage with its 95 % Clopper-Pearson interval and the 95 %
band a correct analysis gives, for all trials and split by the diagnostics (so that the
causes of mis-coverage can be told apart). ``--load F`` re-summarises saved trials.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from svomflow.simulation.xband_mc import XbandTrial, coverage_summary, run_trial

QUANTITIES = ("alpha", "epeak", "fluence", "beta", "norm")
#: quantities of the one-instrument fits (suffixed with the fit's code)
OTHER_QUANTITIES = ("alpha", "epeak", "fluence")


def _quantities(trials: Sequence[XbandTrial]) -> list[str]:
    keys = {k for t in trials for k in t.value}
    out = [q for q in QUANTITIES if q in keys]
    for code in ("GRM", "ECL"):
        out += [f"{q}_{code}" for q in OTHER_QUANTITIES if f"{q}_{code}" in keys]
    return out


def population(name: str, seed: int, peak_flux: float) -> dict:
    """Burst parameters of one trial (keyword arguments of ``simulate_burst``)."""
    if name == "bright":
        return {"peak_flux": peak_flux}
    from benchmarks.mc_eclairs_method import _setup

    s = _setup(seed)
    return {"spectrum": s["spectrum"], "peak_flux": s["peak_flux"], "offaxis_deg": s["offaxis_deg"]}


def _set(cfg: dict, item: str) -> None:
    """Apply one ``section.key=value`` override (value parsed as JSON when it can be)."""
    key, _, raw = item.partition("=")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    *path, last = key.split(".")
    d = cfg
    for p in path:
        d = d.setdefault(p, {})
    d[last] = value


def _fmt(x: float) -> str:
    return f"{x:+6.2f}" if math.isfinite(x) else "   inf"


def _trial_line(t: XbandTrial) -> str:
    if t.error:
        return f"{t.seed:6d}  analysis failed: {t.error}"
    post = "yes" if t.post_burst else "no "
    orders = "".join(str(o) for o in t.background_order.values())
    pulls = " ".join(_fmt(t.pull.get(k, math.nan)) for k in QUANTITIES)
    pulls += "".join(
        f" {k}={_fmt(t.pull[k])}" for k in t.pull if "_" in k and k.startswith("fluence")
    )
    bound = ",".join(t.at_bound) or "-"
    return (
        f"{t.seed:6d} [{t.main[0]:6.2f},{t.main[1]:6.2f}] {post}  {orders:5s} "
        f"{'yes' if t.beta_constrained else 'no '}  {pulls}  {bound}"
    )


def _groups(trials: Sequence[XbandTrial]) -> list[tuple[str, Callable[[XbandTrial], bool]]]:
    return [
        ("all", lambda t: True),
        ("post-burst interval", lambda t: t.post_burst is not None),
        ("no post-burst interval", lambda t: t.post_burst is None),
        ("beta constrained", lambda t: t.beta_constrained),
        ("beta unconstrained", lambda t: not t.beta_constrained),
        ("bright (peak flux >= 10)", lambda t: t.burst.get("peak_flux", 15.0) >= 10),
        ("faint (peak flux < 10)", lambda t: t.burst.get("peak_flux", 15.0) < 10),
    ]


def summarise(trials: Sequence[XbandTrial]) -> dict:
    """Coverage summary per quantity, for all trials and per diagnostic group."""
    ok = [t for t in trials if not t.error]
    out: dict = {"n_trials": len(trials), "n_failed": len(trials) - len(ok), "groups": {}}
    for name, keep in _groups(ok):
        sel = [t for t in ok if keep(t)]
        if not sel:
            continue
        rows = {}
        for q in _quantities(sel):
            use = sel if q != "beta" else [t for t in sel if t.beta_constrained]
            rows[q] = coverage_summary(use, q)
        out["groups"][name] = {"n": len(sel), "quantities": rows}
    out["pathologies"] = {
        "no_post_burst": sum(t.post_burst is None for t in ok),
        "beta_unconstrained": sum(not t.beta_constrained for t in ok),
        "background_order_above_0": sum(
            any(o > 0 for o in t.background_order.values()) for t in ok
        ),
        "t90_not_measured": sum(not all(t.t90_measured.values()) for t in ok),
        "not_converged": sum(not t.converged for t in ok),
        "covariance_regularised": sum(t.covariance_regularised for t in ok),
    }
    return out


def _print_summary(s: dict) -> None:
    print(f"\n{s['n_trials']} trials, {s['n_failed']} failed; pathologies: {s['pathologies']}")
    head = (
        "quantity    n   mean       truth      bias/err  mean v/t  med.pull  "
        "coverage [95% CI]      expected(95%)  z"
    )
    for name, g in s["groups"].items():
        print(f"\n== {name} ({g['n']} trials)")
        print(head)
        for q, r in g["quantities"].items():
            if r.get("n", 0) == 0:
                print(f"{q:9s}   0")
                continue
            be = r["bias"] / r["bias_err"] if r["bias_err"] > 0 else math.nan
            print(
                f"{q:9s} {r['n']:4d}  {r['mean']:10.4g} {r['truth']:10.4g}  {be:+6.2f}   "
                f"{r['ratio']:7.4f}  {r['median_pull']:+7.3f}   {r['coverage']:.3f} "
                f"[{r['coverage_lo']:.3f},{r['coverage_hi']:.3f}]  "
                f"{r['expected_lo'] / r['n']:.3f}-{r['expected_hi'] / r['n']:.3f}  "
                f"{r['coverage_z']:+5.2f}"
            )


def main(argv: list[str] | None = None) -> dict:
    """Run (or load) the trials, print them and the coverage tables; return the summary."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=150, help="number of simulated bursts")
    ap.add_argument("--span", type=float, nargs=2, default=(-30.0, 45.0), help="data span (s)")
    ap.add_argument("--seed", type=int, default=1000, help="first seed (seeds seed..seed+n-1)")
    ap.add_argument("--peak-flux", type=float, default=15.0, help="1-s peak flux (ph/cm2/s)")
    ap.add_argument("--population", choices=("bright", "mixed"), default="bright")
    ap.add_argument(
        "--fits", nargs="+", default=["ECLGRM"], help="fits (first: the main one): ECLGRM GRM ECL"
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="configuration override, e.g. spectral.flux_errors=profile (repeatable)",
    )
    ap.add_argument("--trials-out", type=Path, help="write the trials (JSON lines) here")
    ap.add_argument("--load", type=Path, help="summarise trials saved by --trials-out")
    ap.add_argument("--quiet", action="store_true", help="no per-trial lines")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    from svomflow.tasks.xband.config import XbandAnalysisConfig

    overrides: dict = {}
    for item in args.set:
        _set(overrides, item)
    cfg = XbandAnalysisConfig.model_validate(overrides)
    t_start = time.perf_counter()
    trials: list[XbandTrial] = []
    if args.load:
        for line in args.load.read_text().splitlines():
            d = json.loads(line)
            d["span"] = tuple(d["span"])
            d["main"] = tuple(d["main"])
            d["pre_burst"] = tuple(d["pre_burst"])
            d["post_burst"] = tuple(d["post_burst"]) if d["post_burst"] else None
            trials.append(XbandTrial(**d))
    else:
        if not args.quiet:
            print("  seed  main interval (s)  post  bkg   beta  pulls: " + " ".join(QUANTITIES))
        fh = args.trials_out.open("w") if args.trials_out else None
        for seed in range(args.seed, args.seed + args.n):
            t = run_trial(
                seed,
                span=tuple(args.span),
                cfg=cfg,
                fits=tuple(args.fits),
                **population(args.population, seed, args.peak_flux),
            )
            trials.append(t)
            if fh:
                fh.write(json.dumps(t.as_dict()) + "\n")
                fh.flush()
            if not args.quiet:
                print(_trial_line(t), flush=True)
        if fh:
            fh.close()
    s = summarise(trials)
    s["span"] = list(trials[0].span) if trials else list(args.span)
    s["config"] = overrides
    s["population"] = args.population
    s["wall_s"] = time.perf_counter() - t_start
    if args.json:
        print(json.dumps(s, indent=1))
        return s
    print(
        f"\nX-band fit Monte Carlo: {args.population} bursts, span {s['span']} s, "
        f"configuration overrides {overrides or 'none'}"
    )
    _print_summary(s)
    print(f"\nwall {s['wall_s']:.0f} s ({s['wall_s'] / max(len(trials), 1):.2f} s per trial)")
    return s


if __name__ == "__main__":
    main()
